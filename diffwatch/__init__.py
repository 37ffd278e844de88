"""diffwatch: monitoring and quality feedback for text-to-image diffusion models."""

__version__ = "0.1.0"
