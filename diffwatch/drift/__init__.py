"""Drift: prompt drift, fixed-seed re-generation, golden sets and the diffusers engine."""
