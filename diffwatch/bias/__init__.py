"""The bias probe: perceived demographic skew of a model's images, per version and over time."""
