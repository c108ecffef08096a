"""What each file pushed before hashed to, so an unchanged file is never read again.

A re-push of a folder of thousands of files should cost a HEAD per file, not a read of every
byte: the cache maps a file's absolute path to the digest it had at the (size, mtime_ns, inode)
last seen, the way git's index and `rsync` trust a file's stat. A file whose identity differs is
hashed anew as it is sent. A bundle of small files is kept under the fingerprint of its
members' identities, with the tar's CRC32 and sha256 (the gzip trailer and the ORAS
annotation), so an unchanged bundle's files are not read at all, and it is not sent again.
The cache is a single JSON file in the state folder, written atomically; deleting it only
costs one re-hash per file. It holds paths and digests, nothing secret.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hoist.core.paths import state_dir
from hoist.core.sources.bundle import TarSummary
from hoist.core.sources.content import FileIdentity
from hoist.core.statefile import atomic_write

log = logging.getLogger(__name__)

_VERSION = 1
#: Entries kept at most (the newest win): bounds the file whatever the user pushes over years.
MAX_ENTRIES = 200_000
#: Bundles are keyed by their members' identities: no path starts so (paths are absolute).
_BUNDLE_KEY = "bundle:"


def default_cache_path() -> Path:
    return state_dir() / "digests.json"


class DigestCache:
    """Path → (identity, digest) for whole files, saved after a push.

    Read from disk at its first use, not when made: a run is made on the window's event loop,
    and the cache is only used in worker threads (planning, and `remember_digests`).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_path()
        self._loaded: dict[str, dict[str, Any]] | None = None

    @property
    def _entries(self) -> dict[str, dict[str, Any]]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the digest cache %s: %s", self.path, exc)
            return {}
        if isinstance(doc, dict) and doc.get("version") == _VERSION:
            entries = doc.get("files")
            if isinstance(entries, dict):
                return entries
        return {}

    def lookup(self, path: Path, identity: FileIdentity) -> str | None:
        """The digest `path` had when it last had exactly this identity, or None."""
        entry = self._entries.get(str(path))
        if not isinstance(entry, dict):
            return None
        try:
            if FileIdentity.from_json(entry) != identity:
                return None
        except (KeyError, TypeError, ValueError):
            return None
        digest = entry.get("digest")
        return digest if isinstance(digest, str) and digest.startswith("sha256:") else None

    def remember(self, path: Path, identity: FileIdentity, digest: str) -> None:
        self._entries.pop(str(path), None)  # re-inserted last: the newest are kept on trim
        self._entries[str(path)] = {**identity.to_json(), "digest": digest}

    def lookup_bundle(self, fingerprint: str) -> tuple[str, TarSummary | None] | None:
        """(digest, the tar's summary) a small-file bundle had when its members had exactly
        these identities (`BundleSource.fingerprint`), or None. The summary is None in an entry
        written before it was kept: the tar is then read once to make it."""
        entry = self._entries.get(_BUNDLE_KEY + fingerprint)
        if not isinstance(entry, dict):
            return None
        digest = entry.get("digest")
        if not (isinstance(digest, str) and digest.startswith("sha256:")):
            return None
        return digest, TarSummary.from_json(entry.get("tar"))

    def remember_bundle(
        self, fingerprint: str, digest: str, summary: TarSummary | None = None
    ) -> None:
        key = _BUNDLE_KEY + fingerprint
        self._entries.pop(key, None)
        entry: dict[str, Any] = {"digest": digest}
        if summary is not None:
            entry["tar"] = summary.to_json()
        self._entries[key] = entry

    def save(self) -> None:
        """Write the cache atomically (blocking: call it in a worker thread)."""
        while len(self._entries) > MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"version": _VERSION, "files": self._entries}, separators=(",", ":"))
        atomic_write(self.path, data.encode())
