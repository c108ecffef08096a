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
import logging
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hoist.core.errors import ProfileUnwritable, os_reason
from hoist.core.paths import config_dir
from hoist.core.statefile import atomic_write, read_regular_file

log = logging.getLogger(__name__)

#: profiles.json holds a few numbers per host; anything larger is not one.
MAX_PROFILES_SIZE = 1024 * 1024


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
    def from_json(cls, doc: object) -> RegistryProfile:
        """What a saved entry says; values of the wrong type (a hand-edited file) are dropped,
        as if never learned."""
        if not isinstance(doc, dict):
            return cls()
        kept: dict[str, Any] = {}
        for f in fields(cls):
            value = doc.get(f.name)
            wants_bool = f.type == "bool | None"
            if isinstance(value, bool) if wants_bool else type(value) is int and value > 0:
                kept[f.name] = value
        return cls(**kept)


class ProfileStore:
    """`<config dir>/profiles.json`: host → RegistryProfile. Writes are atomic; one that fails
    raises ProfileUnwritable."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "profiles.json"
        self._lock = threading.Lock()
        self._warned: set[str] = set()  # each sentence once per store, not once per chunk

    def _read(self) -> dict[str, Any]:
        """The file's hosts; a broken file only costs re-learning, it must never stop a push
        (and a FIFO or a huge file put there must not hang one)."""
        try:
            doc = json.loads(read_regular_file(self.path, MAX_PROFILES_SIZE))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            self.warn(f"ignoring {self.path} ({reason}); Hoist learns each registry's limits anew")
            return {}
        if not isinstance(doc, dict):
            self.warn(f"ignoring {self.path} (not a JSON object); Hoist learns anew")
            return {}
        return doc

    def warn(self, sentence: str) -> None:
        if sentence not in self._warned:
            self._warned.add(sentence)
            log.warning("%s", sentence)

    def _write(self, doc: dict[str, Any]) -> None:
        try:
            atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode())
        except OSError as exc:
            raise ProfileUnwritable(
                f"Hoist cannot save the registry profiles in {self.path}: {os_reason(exc)}"
            ) from exc

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
            self._write(doc)
            return profile

    def reset(self, host: str | None = None) -> None:
        with self._lock:
            doc = {} if host is None else {h: d for h, d in self._read().items() if h != host}
            self._write(doc)
