"""The review queue stage: filling the human review queue by policy."""
