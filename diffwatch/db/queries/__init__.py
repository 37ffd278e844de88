"""All SQL, grouped by who uses it."""
