"""Annotation keys Hoist writes and reads: the OCI ones, those oras understands, and Hoist's own.

One home, so that the push that writes a key and the pull that reads it can't drift apart.
(Folder layers' `app.hoist.file.mode` and `app.hoist.folder.empty-dirs` are kept beside the
folder scan that gives them their meaning, `hoist.core.sources.folder`.)
"""

from __future__ import annotations

#: A layer's file name: `oras pull` writes the layer back under it.
TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
#: The name an OCI layout's index.json gives an image (usually its tag alone).
REF_NAME = "org.opencontainers.image.ref.name"

#: oras: this layer is a gzip tar of a folder, to unpack on pull...
ORAS_UNPACK = "io.deis.oras.content.unpack"
#: ...whose uncompressed tar has this digest.
ORAS_DIGEST = "io.deis.oras.content.digest"

#: Split mode: each part of a file cut into parts says which part of what it is.
SPLIT_PREFIX = "app.hoist.split."
SPLIT_FILE = SPLIT_PREFIX + "file"  # the original file's name
SPLIT_INDEX = SPLIT_PREFIX + "index"  # 1-based
SPLIT_COUNT = SPLIT_PREFIX + "count"
SPLIT_OFFSET = SPLIT_PREFIX + "offset"
SPLIT_FILE_SIZE = SPLIT_PREFIX + "file.size"
SPLIT_FILE_DIGEST = SPLIT_PREFIX + "file.digest"  # sha256 of the whole file (manifest level)
