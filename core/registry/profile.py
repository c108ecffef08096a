"""What Hoist has learned about each registry host, kept in the user's config folder.

Learned as Hoist works, never by probing up front: the largest chunk a host (or the proxy in
front of it) accepted before it answered 413/416, the minimum chunk it asked for, whether it
takes chunked PATCH at all, whether it (and every proxy on the way) takes a streamed PATCH
body (`Transfer-Encoding: chunked`, which a pause can end at any byte), and whether an
upload cut mid-chunk could be resumed by GET. Plus the user's own per-registry default
upload rate. Never secrets, never in the journal.

Each fact is one declared field of RegistryProfile (`quirk()`): its type checks what the file
says, its merge rule combines a new lesson with what was kept, and the upload teaches it with
a typed lesson (`RegistryProfile(streamed=False)`), never a string key.
"""

from __future__ import annotations

import json
import logging
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hoist.core.errors import ProfileUnwritable, os_reason
from hoist.core.paths import config_dir
from hoist.core.statefile import atomic_write, read_regular_file

log = logging.getLogger(__name__)

#: profiles.json holds a few numbers per host; anything larger is not one.
MAX_PROFILES_SIZE = 1024 * 1024

Value = int | bool
#: How a lesson combines with what was kept: (kept, learned) -> kept from now on.
Merge = Callable[[Value, Value], Value]


def _learned(_kept: Value, learned: Value) -> Value:
    return learned


def _smaller(kept: Value, learned: Value) -> Value:
    return min(kept, learned)


def quirk(*, merge: Merge = _learned) -> Any:
    """Declares one field of RegistryProfile: unknown (None) until learned or set, and how a
    new lesson combines with what the host already taught (default: the newest wins)."""
    return field(default=None, metadata={"merge": merge})


@dataclass
class RegistryProfile:
    """What one host taught Hoist, each fact None until learned. Adding a quirk is adding a
    field here: the file, the lessons and `hoist profile` follow from the declaration; the
    upload learns it (`UploadSettings.on_limit`) and `transfer.settings.apply_profile` uses it.

    Values are positive counts (int) or flags (bool); anything else in the file is dropped.
    """

    #: The largest PATCH body known to pass (a proxy's 413, GHCR's 416 above 4 MiB). Two
    #: pushes learning at once keep the smaller.
    max_chunk: int | None = quirk(merge=_smaller)
    #: OCI-Chunk-Min-Length, as the host said (ECR: 5 MiB).
    min_chunk: int | None = quirk()
    #: False: no PATCH at all (Google Artifact Registry): one PUT per blob.
    chunked: bool | None = quirk()
    #: False: a streamed PATCH (Transfer-Encoding: chunked) refused: sized chunks only.
    streamed: bool | None = quirk()
    #: Whether an upload cut mid-chunk could (True) or could not (False) be resumed.
    resumable: bool | None = quirk()
    #: The user's default upload cap for this host, bytes/s (set, never learned).
    limit_rate: int | None = quirk()

    def to_json(self) -> dict[str, Any]:
        return {q.name: v for q in QUIRKS if (v := getattr(self, q.name)) is not None}

    @classmethod
    def from_json(cls, doc: object) -> RegistryProfile:
        """What a saved entry says; values of the wrong type (a hand-edited file) are dropped,
        as if never learned; keys of no declared quirk are not this Hoist's to read."""
        if not isinstance(doc, dict):
            return cls()
        return cls(**{q.name: doc[q.name] for q in QUIRKS if q.accepts(doc.get(q.name))})

    def merged(self, lesson: RegistryProfile) -> RegistryProfile:
        """This profile with what `lesson` says (its fields that are not None) taken in."""
        changes: dict[str, Any] = {}  # the lesson's own typed values, merged
        for q in QUIRKS:
            learned = getattr(lesson, q.name)
            if learned is not None:
                kept = getattr(self, q.name)
                changes[q.name] = learned if kept is None else q.merge(kept, learned)
        return replace(self, **changes)


@dataclass(frozen=True)
class Quirk:
    """One declared field of RegistryProfile, as the file and the lessons need it."""

    name: str
    kind: type[int] | type[bool]
    merge: Merge

    def accepts(self, value: object) -> bool:
        """Whether a value read from the file is one this quirk can hold (bool is not an int
        here, and a count is positive)."""
        if self.kind is bool:
            return isinstance(value, bool)
        return type(value) is int and value > 0


def declared_quirks(profile: type[RegistryProfile]) -> tuple[Quirk, ...]:
    """The quirks a profile class declares, in order. Raises TypeError for a field not
    declared with `quirk()` or not a count or a flag: the file and the lessons can't hold it."""
    hints = typing.get_type_hints(profile)
    quirks = []
    for f in fields(profile):
        hint = hints[f.name]
        kinds = [k for k in typing.get_args(hint) if k is not types.NoneType]
        if "merge" not in f.metadata:
            raise TypeError(f"quirk {f.name}: declare it with quirk()")
        if not isinstance(hint, types.UnionType) or len(kinds) != 1 or kinds[0] not in (int, bool):
            raise TypeError(f"quirk {f.name}: declare it `int | None` or `bool | None`")
        quirks.append(Quirk(f.name, kinds[0], f.metadata["merge"]))
    return tuple(quirks)


#: Every quirk, in declaration order.
QUIRKS = declared_quirks(RegistryProfile)
_QUIRK_NAMES = frozenset(q.name for q in QUIRKS)


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

    def learn(self, host: str, lesson: RegistryProfile) -> RegistryProfile:
        """Take in what a transfer just learned about `host` (the lesson's fields that are
        not None, each merged as its quirk declares)."""
        return self._change(host, lambda profile: profile.merged(lesson))

    def update(self, host: str, **changes: Value | None) -> RegistryProfile:
        """Set facts as the user says (`hoist profile HOST --limit-rate`); None forgets one.
        Raises TypeError for a name that is no quirk."""
        named: dict[str, Any] = dict(changes)
        return self._change(host, lambda profile: replace(profile, **named))

    def _change(
        self, host: str, change: Callable[[RegistryProfile], RegistryProfile]
    ) -> RegistryProfile:
        with self._lock:
            doc = self._read()
            entry = doc.get(host)
            entry = entry if isinstance(entry, dict) else {}
            profile = change(RegistryProfile.from_json(entry))
            # Keys of no quirk this Hoist knows are a newer Hoist's: kept, as it would keep ours.
            unknown = {k: v for k, v in entry.items() if k not in _QUIRK_NAMES}
            doc[host] = {**unknown, **profile.to_json()}
            self._write(doc)
            return profile

    def reset(self, host: str | None = None) -> None:
        with self._lock:
            doc = {} if host is None else {h: d for h, d in self._read().items() if h != host}
            self._write(doc)
