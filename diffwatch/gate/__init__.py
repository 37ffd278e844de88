"""Release gates: compare a candidate diffusion pipeline with a baseline on paired items."""
