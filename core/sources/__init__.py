"""Where a push's bytes come from: files, folders (artifacts), OCI layouts and docker archives.

Each source is read in place as byte ranges of local files (`content.FileRange`), never copied
or extracted; this layer knows nothing of registries or of how a transfer is journaled. What a
format does is `source.py`; each format is one module, and `formats.FORMATS` lists them in the
order a path is recognised.
"""
