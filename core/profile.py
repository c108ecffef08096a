"""What Hoist has learned about each registry host, kept in the user's config folder.

Learned as Hoist works, never by probing up front: the largest chunk a host (or the proxy in
front of it) accepted before it answered 413/416, the minimum chunk it asked for, whether it
takes chunked PATCH at all, whether it (and every proxy on the way) takes a streamed PATCH
body (`Transfer-Encoding: chunked`, which a pause can end at any byte), and whether an
upload cut mid-chunk could be resumed by GET. Plus the user's own per-registry default
upload rate. Never secrets, never in the journal.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .journal import atomic_write
from .paths import config_dir
from .upload import UploadSettings


@dataclass
class RegistryProfile:
    max_chunk: int | None = None  # the largest PATCH body known to pass
    min_chunk: int | None = None  # OCI-Chunk-Min-Length, as the host said
    chunked: bool | None = None  # False: no PATCH (Google Artifact Registry)
    streamed: bool | None = None  # False: streamed PATCH refused (sized chunks only)
    resumable: bool | None = None  # a cut upload could (True) / could not (False) be resumed
    limit_rate: int | None = None  # the user's default cap for this host, bytes/s

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RegistryProfile:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


class ProfileStore:
    """`<config dir>/profiles.json`: host → RegistryProfile. Writes are atomic."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "profiles.json"
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a broken profile only costs re-learning; it must not stop a push
        return doc if isinstance(doc, dict) else {}

    def get(self, host: str) -> RegistryProfile:
        return RegistryProfile.from_json(self._read().get(host, {}))

    def all(self) -> dict[str, RegistryProfile]:
        return {h: RegistryProfile.from_json(d) for h, d in self._read().items()}

    def update(self, host: str, **changes: Any) -> RegistryProfile:
        with self._lock:
            doc = self._read()
            profile = RegistryProfile.from_json(doc.get(host, {}))
            for key, value in changes.items():
                if key == "max_chunk" and profile.max_chunk is not None and value is not None:
                    value = min(profile.max_chunk, value)
                setattr(profile, key, value)
            doc[host] = profile.to_json()
            atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode())
            return profile

    def reset(self, host: str | None = None) -> None:
        with self._lock:
            doc = {} if host is None else {h: d for h, d in self._read().items() if h != host}
            atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode())


def apply_profile(settings: UploadSettings, host: str, store: ProfileStore) -> UploadSettings:
    """Start from what the host taught us, and keep teaching the store as the upload learns."""
    profile = store.get(host)
    if profile.max_chunk:
        settings.max_chunk = profile.max_chunk
    if profile.min_chunk:
        settings.min_chunk = max(settings.min_chunk, profile.min_chunk)
    if profile.chunked is False:
        settings.chunked = False
    if profile.streamed is False:
        settings.streamed = False

    def learn(key: str, value: int | bool) -> None:
        store.update(host, **{key: value})

    settings.on_limit = learn
    return settings
