"""``diffwatch demo``: a simulated generation service ingested through the real collectors.

Pure generators (``scenes``, ``draw``, ``fleet``, ``traffic``, ``records``) are kept apart
from file I/O (``files``, ``service``) and from the database (``store``); ``scoring`` runs the
real scoring worker over a sample; ``run`` ties them together for the CLI.
"""
