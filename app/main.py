"""The diffwatch dashboard: ``diffwatch app`` runs ``streamlit run`` on this file."""

from __future__ import annotations

import streamlit as st


def main() -> None:
    """Build the navigation and run the chosen page."""
    from app.config import NoDatabase, conninfo
    from app.views import cost, drift, explorer, gpu, latency, overview, quality, versions

    st.set_page_config(page_title="diffwatch", layout="wide")
    try:
        conninfo()
    except NoDatabase as exc:
        st.error(str(exc))
        st.stop()
    pages = [
        st.Page(overview.render, title="Overview", url_path="overview", default=True),
        st.Page(cost.render, title="Cost", url_path="cost"),
        st.Page(latency.render, title="Latency & throughput", url_path="latency"),
        st.Page(gpu.render, title="GPU", url_path="gpu"),
        st.Page(quality.render, title="Quality & safety", url_path="quality"),
        st.Page(versions.render, title="Model versions", url_path="versions"),
        st.Page(explorer.render, title="Generation explorer", url_path="explorer"),
        st.Page(drift.render, title="Drift", url_path="drift"),
    ]
    st.navigation(pages).run()


if __name__ == "__main__":
    main()
