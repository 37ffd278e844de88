"""Image embeddings put to work: search (text → images, image → similar images) and
near-duplicates, over the CLIP embeddings the scoring worker stores in pgvector.

A stage of its own: it reads through ``diffwatch.db.queries.embedding_reads`` and encodes
search text through scoring's CLIP loader, lazily (torch loads only when text is encoded).
"""
