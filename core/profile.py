"""What Hoist has learned about each registry host, kept in the user's config folder.

Learned as Hoist works, never by probing up front: the largest chunk a host (or the proxy in
front of it) accepted before it answered 413/416, the minimum chunk it asked for, whether it
takes chunked PATCH at all, and whether an upload cut mid-chunk could be resumed by GET. Plus
the user's own per-registry default upload rate. Never secrets, never in the journal.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .bandwidth import BandwidthLimiter
from .journal import atomic_write
from .paths import config_dir
from .retry import RetryPolicy
from .units import GiB, format_size
from .upload import DEFAULT_CHUNK, UploadSettings

#: Files larger than this get split mode offered where a cut upload restarts from byte 0.
SPLIT_THRESHOLD = 8 * GiB


@dataclass
class RegistryProfile:
    max_chunk: int | None = None  # the largest PATCH body known to pass
    min_chunk: int | None = None  # OCI-Chunk-Min-Length, as the host said
    chunked: bool | None = None  # False: no PATCH (Google Artifact Registry)
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

    def learn(key: str, value: int | bool) -> None:
        store.update(host, **{key: value})

    settings.on_limit = learn
    return settings


def transfer_settings(
    host: str,
    *,
    chunk_size: int | None = None,
    limit_rate: int | None = None,
    give_up_after: float | None = None,
    store: ProfileStore | None = None,
) -> UploadSettings:
    """The one place that decides how a transfer to `host` is sent; the CLI and the window
    both call it, so a host's learned profile applies whichever the user runs.

    Args:
        host: the registry's API host (`Reference.api_host`), the key of its profile.
        chunk_size: the user's own chunk size, kept exactly; None: adaptive from 64 MiB.
        limit_rate: the user's cap for this transfer (bytes/s); None: the host's profile
            cap, if any. 0: no cap of its own.
        give_up_after: seconds of retrying before a transfer fails; None: retry until the
            user pauses (the window shows the countdown).
        store: the profiles (default: the user's config folder).
    """
    store = store or ProfileStore()
    settings = UploadSettings(
        chunk_size=chunk_size or DEFAULT_CHUNK,
        adaptive=not chunk_size,
        retry=RetryPolicy(give_up_after=give_up_after),
    )
    apply_profile(settings, host, store)
    rate = store.get(host).limit_rate if limit_rate is None else limit_rate
    if rate:
        settings.throttle = BandwidthLimiter(rate).take
    return settings


def split_advice(name: str, size: int, profile: RegistryProfile, part_size: int) -> str:
    """The sentence offering split mode for a file, or "" when it isn't worth it.

    Offered when the file is larger than SPLIT_THRESHOLD and the registry keeps nothing of
    an upload cut mid-chunk (learned: `resumable` False; not yet learned: distribution 2.x
    and Harbor, the most common, keep nothing). Says what split mode gives and costs.
    """
    if size <= SPLIT_THRESHOLD or profile.resumable:
        return ""
    why = (
        "this registry keeps nothing of an upload cut mid-chunk"
        if profile.resumable is False
        else "registries like distribution 2 and Harbor keep nothing of an upload cut mid-chunk"
    )
    return (
        f"{name} is {format_size(size)} and {why}: after a lost session it would start again "
        f"from the beginning. Split mode sends it as {format_size(part_size)} parts, so a cut "
        "costs at most one part, and parts can go in parallel. The cost: the registry holds "
        "parts (`oras pull` gives them; Hoist's download joins them, as `cat NAME.part* > "
        "NAME` does)."
    )
