"""HTTP ingest (``diffwatch collect http``): batches of log records POSTed to an ASGI app."""
