"""What Hoist learns about each registry (profiles.json): every declared quirk round-trips
through the file and through a lesson, with no other edit; files of earlier versions load; keys
this Hoist doesn't know are kept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from hoist.core.registry.profile import (
    QUIRKS,
    ProfileStore,
    Quirk,
    RegistryProfile,
    declared_quirks,
    quirk,
)

HOST = "registry.example.com"

#: profiles.json exactly as Hoist wrote it before quirks were declared (session 3).
PREVIOUS_VERSION_FILE = """{
 "ghcr.io": {
  "max_chunk": 4194304,
  "streamed": false
 },
 "europe-docker.pkg.dev": {
  "chunked": false,
  "limit_rate": 20971520,
  "min_chunk": 5242880,
  "resumable": true
 }
}"""


def sample(quirk: Quirk) -> int | bool:
    """A value this quirk can hold that differs from its default (None)."""
    return False if quirk.kind is bool else 5 * 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> ProfileStore:
    return ProfileStore(tmp_path / "profiles.json")


def test_every_profile_field_is_a_declared_quirk() -> None:
    assert [q.name for q in QUIRKS] == list(RegistryProfile.__dataclass_fields__)
    assert [q.kind for q in QUIRKS] == [int, int, bool, bool, bool, int]


@dataclass
class Undeclared(RegistryProfile):
    forgotten: int | None = None


@dataclass
class Unstorable(RegistryProfile):
    name: str | None = quirk()


@pytest.mark.parametrize("wrong", [Undeclared, Unstorable])
def test_a_quirk_the_file_could_not_hold_is_refused(wrong: type[RegistryProfile]) -> None:
    """A field added without `quirk()` (no merge rule) or of a type the file can't check
    fails at import, not in a user's profiles.json."""
    with pytest.raises(TypeError, match=r"quirk (forgotten|name): declare it"):
        declared_quirks(wrong)


@pytest.mark.parametrize("quirk", QUIRKS, ids=lambda q: q.name)
def test_each_quirk_round_trips_through_the_file(quirk: Quirk, store: ProfileStore) -> None:
    value = sample(quirk)
    learned = store.learn(HOST, RegistryProfile(**{quirk.name: value}))
    assert getattr(learned, quirk.name) == value
    assert getattr(store.get(HOST), quirk.name) == value
    assert json.loads(store.path.read_text()) == {HOST: {quirk.name: value}}
    # Every other quirk is still unknown: a lesson sets only what it says.
    assert store.get(HOST) == RegistryProfile(**{quirk.name: value})


@pytest.mark.parametrize("quirk", QUIRKS, ids=lambda q: q.name)
def test_a_hand_edited_value_of_the_wrong_type_is_dropped(quirk: Quirk) -> None:
    wrong: object = "yes" if quirk.kind is bool else True
    for bad in (wrong, None, [1], 0 if quirk.kind is int else 1):
        assert getattr(RegistryProfile.from_json({quirk.name: bad}), quirk.name) is None


def test_a_file_from_the_previous_version_loads(store: ProfileStore) -> None:
    store.path.write_text(PREVIOUS_VERSION_FILE)
    assert store.all() == {
        "ghcr.io": RegistryProfile(max_chunk=4 * 1024 * 1024, streamed=False),
        "europe-docker.pkg.dev": RegistryProfile(
            chunked=False, limit_rate=20 * 1024 * 1024, min_chunk=5 * 1024 * 1024, resumable=True
        ),
    }
    store.learn("ghcr.io", RegistryProfile(resumable=False))
    written = json.loads(store.path.read_text())
    assert written["ghcr.io"] == {"max_chunk": 4194304, "streamed": False, "resumable": False}
    assert (
        written["europe-docker.pkg.dev"]
        == json.loads(PREVIOUS_VERSION_FILE)["europe-docker.pkg.dev"]
    )


def test_keys_this_hoist_does_not_know_are_kept(store: ProfileStore) -> None:
    """A newer Hoist's quirk survives an older Hoist learning about the same host (as the
    window's settings file keeps unknown keys): otherwise the newer one re-learns it."""
    store.path.write_text(json.dumps({HOST: {"max_chunk": 8388608, "zstd": False}}))
    store.update(HOST, streamed=False)
    store.learn(HOST, RegistryProfile(min_chunk=1024))
    assert json.loads(store.path.read_text()) == {
        HOST: {"max_chunk": 8388608, "zstd": False, "streamed": False, "min_chunk": 1024}
    }
    assert store.get(HOST) == RegistryProfile(max_chunk=8388608, min_chunk=1024, streamed=False)


def test_a_larger_max_chunk_never_replaces_a_smaller_one_learned(store: ProfileStore) -> None:
    """Two pushes at once to one host learn from different proxies' refusals: the smaller
    limit is the one every later push must respect."""
    store.learn(HOST, RegistryProfile(max_chunk=4 * 1024 * 1024))
    assert store.learn(HOST, RegistryProfile(max_chunk=8 * 1024 * 1024)).max_chunk == 4194304
    assert store.learn(HOST, RegistryProfile(max_chunk=2 * 1024 * 1024)).max_chunk == 2097152
    # The user's own setting is a setting, not a lesson: it replaces.
    assert store.update(HOST, max_chunk=16 * 1024 * 1024).max_chunk == 16777216


def test_an_update_naming_no_quirk_is_refused(store: ProfileStore) -> None:
    with pytest.raises(TypeError):
        store.update(HOST, max_chunks=1)
