"""The OCI vocabulary: references, digests, media types and manifest documents.

The lowest layer above the foundation modules (errors, units, paths): pure data and parsing,
no I/O and no network. Everything above speaks in these terms.
"""
