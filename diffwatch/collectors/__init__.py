"""Collectors: generation logs and GPU metrics into Postgres. Parsing is pure; I/O is apart."""
