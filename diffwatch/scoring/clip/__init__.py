"""CLIP prompt-image alignment: config, weights loading, preprocessing, text and the scorer."""
