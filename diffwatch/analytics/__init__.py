"""Pure statistics for the dashboard pages: no I/O, no Streamlit, deterministic."""
