"""Credential resolution: keyring, docker config, credential helpers, podman auth files.

Everything runs against a temp HOME / DOCKER_CONFIG / XDG_* / REGISTRY_AUTH_FILE and an
in-memory keyring, so no test can read or write the real user's keyring or ~/.docker.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringLocked, PasswordDeleteError

from hoist.core.errors import CredentialsError
from hoist.core.registry.auth import Credentials
from hoist.core.registry.credentials import (
    KEYRING_SERVICE,
    ContainersAuthKeychain,
    CredentialSource,
    DockerConfigKeychain,
    KeyringKeychain,
    MultiKeychain,
    ResolvedCredentials,
    delete_credentials,
    find_credentials,
    keyring_available,
    registry_host,
    resolve_credentials,
    store_credentials,
)

SECRET = "s3cr3t-hunter2"


class MemoryKeyring(KeyringBackend):
    """A dict as a keyring. No `priority`, so keyring never auto-selects it elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.entries[(service, username)]
        except KeyError:
            raise PasswordDeleteError("not found") from None


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked(f"locked while reading {SECRET}")


def _install_keyring(monkeypatch: pytest.MonkeyPatch, backend: KeyringBackend) -> None:
    # monkeypatch first so the original (usually None: not yet detected) comes back afterwards.
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    keyring.set_keyring(backend)


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp home with no config anywhere, and an empty in-memory keyring."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for var in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    _install_keyring(monkeypatch, MemoryKeyring())
    return home


@pytest.fixture
def memkeyring() -> MemoryKeyring:
    backend = keyring.get_keyring()
    assert isinstance(backend, MemoryKeyring)
    return backend


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _docker_config(home: Path, doc: dict[str, Any]) -> Path:
    return _write_json(home / ".docker" / "config.json", doc)


HELPER = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_HELPER_LOG"], "a") as log:
    log.write(name + " " + " ".join(sys.argv[1:]) + " " + sys.stdin.read() + "\\n")
if name == "docker-credential-broken":
    sys.stderr.write("the helper fell over\\n")
    sys.exit(3)
if name == "docker-credential-garbage":
    print("this is not json")
    sys.exit(0)
answers = json.loads(os.environ["FAKE_HELPER_ANSWERS"])
"""
HELPER_TAIL = """
with open(os.environ["FAKE_HELPER_LOG"]) as log:
    url = log.read().splitlines()[-1].split(" ", 2)[2]
if url in answers:
    user, secret = answers[url]
    print(json.dumps({{"ServerURL": url, "Username": user, "Secret": secret}}))
else:
    print("credentials not found in native keychain")
    sys.exit(1)
"""


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`docker-credential-{fake,other,broken,garbage}` on PATH; returns the call log."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = HELPER.format(python=sys.executable) + HELPER_TAIL.format()
    for name in ("fake", "other", "broken", "garbage"):
        path = bindir / f"docker-credential-{name}"
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    calls = tmp_path / "helper-calls.log"
    calls.write_text("")
    monkeypatch.setenv("FAKE_HELPER_LOG", str(calls))
    monkeypatch.setenv(
        "FAKE_HELPER_ANSWERS",
        json.dumps(
            {
                "reg.example.com": ["helper-user", SECRET],
                "https://index.docker.io/v1/": ["hub-user", SECRET],
                "tokens.example.com": ["<token>", "id-token-xyz"],
            }
        ),
    )
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    yield calls


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


# -- host names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "host"),
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("reg.example.com", "reg.example.com"),
        ("https://reg.example.com", "reg.example.com"),
        ("http://Reg.Example.com:5000/", "reg.example.com:5000"),
        ("https://reg.example.com/v2/", "reg.example.com"),
        ("localhost:5000", "localhost:5000"),
    ],
)
def test_registry_host(written: str, host: str) -> None:
    assert registry_host(written) == host


# -- explicit ---------------------------------------------------------------------------------


def test_explicit_credentials_win(env: Path) -> None:
    _docker_config(env, {"auths": {"reg.example.com": {"auth": _auth("file", "filepw")}}})
    found = find_credentials("reg.example.com", "me", "typed")
    assert found is not None
    assert found.credentials == Credentials("me", "typed")
    assert found.source is CredentialSource.EXPLICIT
    assert resolve_credentials("reg.example.com", "me", "typed") == Credentials("me", "typed")


def test_nothing_anywhere_is_anonymous() -> None:
    assert resolve_credentials("reg.example.com") is None


def test_password_without_username_is_an_error() -> None:
    with pytest.raises(CredentialsError, match="without a username") as info:
        find_credentials("reg.example.com", None, SECRET)
    assert SECRET not in str(info.value)


def test_username_alone_picks_stored_credentials_for_that_user(env: Path) -> None:
    store_credentials("reg.example.com", Credentials("alice", "keyringpw"))
    _docker_config(env, {"auths": {"reg.example.com": {"auth": _auth("bob", "dockerpw")}}})
    bob = resolve_credentials("reg.example.com", "bob")
    assert bob == Credentials("bob", "dockerpw")
    assert resolve_credentials("reg.example.com", "alice") == Credentials("alice", "keyringpw")
    assert resolve_credentials("reg.example.com", "carol") is None


# -- docker config: auths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "reg.example.com",
        "https://reg.example.com",
        "http://reg.example.com",
        "https://reg.example.com/",
        "https://reg.example.com/v1/",
        "https://reg.example.com/v2/",
    ],
)
def test_auths_key_forms(env: Path, key: str) -> None:
    path = _docker_config(env, {"auths": {key: {"auth": _auth("user", SECRET)}}})
    found = find_credentials("reg.example.com")
    assert found is not None
    assert found.credentials == Credentials("user", SECRET)
    assert found.source is CredentialSource.DOCKER_CONFIG
    assert found.detail == str(path)
    assert found.description == f"from docker config ({path})"


def test_auths_port_and_host_are_distinct(env: Path) -> None:
    _docker_config(
        env,
        {
            "auths": {
                "localhost:5000": {"auth": _auth("five", "pw5")},
                "localhost": {"auth": _auth("plain", "pw")},
                "other.example.com": {"auth": _auth("other", "pw")},
            }
        },
    )
    assert resolve_credentials("localhost:5000") == Credentials("five", "pw5")
    assert resolve_credentials("localhost") == Credentials("plain", "pw")
    assert resolve_credentials("localhost:5001") is None
    assert resolve_credentials("reg.example.com") is None


def test_auths_identity_token(env: Path) -> None:
    _docker_config(
        env,
        {"auths": {"reg.example.com": {"auth": _auth("user", ""), "identitytoken": "idtok"}}},
    )
    creds = resolve_credentials("reg.example.com")
    assert creds == Credentials("<token>", "idtok")
    assert creds is not None and creds.is_identity_token


def test_auths_empty_entry_is_nothing(env: Path) -> None:
    _docker_config(env, {"auths": {"reg.example.com": {}}})
    assert resolve_credentials("reg.example.com") is None


@pytest.mark.parametrize("name", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_aliases_find_hub_key(env: Path, name: str) -> None:
    _docker_config(env, {"auths": {"https://index.docker.io/v1/": {"auth": _auth("hub", SECRET)}}})
    assert resolve_credentials(name) == Credentials("hub", SECRET)


def test_docker_config_env_wins_over_home(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _docker_config(env, {"auths": {"reg.example.com": {"auth": _auth("home", "pw")}}})
    elsewhere = tmp_path / "dockercfg"
    _write_json(
        elsewhere / "config.json", {"auths": {"reg.example.com": {"auth": _auth("env", "pw")}}}
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(elsewhere))
    assert resolve_credentials("reg.example.com") == Credentials("env", "pw")


def test_malformed_config_is_a_clear_error(env: Path) -> None:
    path = env / ".docker" / "config.json"
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not a valid JSON object"):
        resolve_credentials("reg.example.com")


def test_bad_base64_names_the_entry_not_the_secret(env: Path) -> None:
    _docker_config(env, {"auths": {"reg.example.com": {"auth": "!!" + SECRET}}})
    with pytest.raises(CredentialsError, match="not valid base64") as info:
        resolve_credentials("reg.example.com")
    assert SECRET not in str(info.value)
    assert SECRET not in info.value.sentence()


def test_auth_without_colon_is_an_error_without_the_secret(env: Path) -> None:
    raw = base64.b64encode(SECRET.encode()).decode()
    _docker_config(env, {"auths": {"reg.example.com": {"auth": raw}}})
    with pytest.raises(CredentialsError, match="username:password") as info:
        resolve_credentials("reg.example.com")
    assert SECRET not in str(info.value)


# -- docker config: credential helpers ----------------------------------------------------------


def test_cred_helper_answers(env: Path, helpers: Path) -> None:
    _docker_config(env, {"credHelpers": {"reg.example.com": "fake"}})
    found = find_credentials("reg.example.com")
    assert found is not None
    assert found.credentials == Credentials("helper-user", SECRET)
    assert found.source is CredentialSource.CREDENTIAL_HELPER
    assert found.detail == "docker-credential-fake"
    assert _calls(helpers) == ["docker-credential-fake get reg.example.com"]


def test_cred_helper_gets_docker_hub_url(env: Path, helpers: Path) -> None:
    _docker_config(env, {"credHelpers": {"index.docker.io": "fake"}})
    assert resolve_credentials("registry-1.docker.io") == Credentials("hub-user", SECRET)
    assert _calls(helpers) == ["docker-credential-fake get https://index.docker.io/v1/"]


def test_cred_helper_identity_token(env: Path, helpers: Path) -> None:
    _docker_config(env, {"credsStore": "fake"})
    creds = resolve_credentials("tokens.example.com")
    assert creds == Credentials("<token>", "id-token-xyz")
    assert creds is not None and creds.is_identity_token


def test_cred_helpers_beat_creds_store(env: Path, helpers: Path) -> None:
    _docker_config(
        env,
        {
            "credsStore": "other",
            "credHelpers": {"reg.example.com": "fake"},
            "auths": {"reg.example.com": {"auth": _auth("inline", "pw")}},
        },
    )
    found = find_credentials("reg.example.com")
    assert found is not None and found.detail == "docker-credential-fake"
    assert found.credentials.username == "helper-user"
    # Other hosts go to credsStore.
    assert resolve_credentials("docker.io") == Credentials("hub-user", SECRET)
    assert [c.split()[0] for c in _calls(helpers)] == [
        "docker-credential-fake",
        "docker-credential-other",
    ]


def test_creds_store_beats_inline_auths(env: Path, helpers: Path) -> None:
    _docker_config(
        env,
        {"credsStore": "fake", "auths": {"reg.example.com": {"auth": _auth("inline", "pw")}}},
    )
    found = find_credentials("reg.example.com")
    assert found is not None and found.source is CredentialSource.CREDENTIAL_HELPER


def test_helper_not_found_falls_back_to_inline_then_none(env: Path, helpers: Path) -> None:
    _docker_config(
        env,
        {"credsStore": "fake", "auths": {"inline.example.com": {"auth": _auth("inline", "pw")}}},
    )
    found = find_credentials("inline.example.com")
    assert found is not None
    assert found.source is CredentialSource.DOCKER_CONFIG
    assert found.credentials == Credentials("inline", "pw")
    assert resolve_credentials("unknown.example.com") is None
    assert len(_calls(helpers)) == 2


def test_failing_helper_is_a_credentials_error(env: Path, helpers: Path) -> None:
    _docker_config(env, {"credHelpers": {"reg.example.com": "broken"}})
    with pytest.raises(CredentialsError, match="exit status 3: the helper fell over"):
        resolve_credentials("reg.example.com")


def test_garbage_helper_output_is_a_credentials_error(env: Path, helpers: Path) -> None:
    _docker_config(env, {"credsStore": "garbage"})
    with pytest.raises(CredentialsError, match="not credentials JSON"):
        resolve_credentials("reg.example.com")


def test_missing_helper_is_a_credentials_error(env: Path, helpers: Path) -> None:
    _docker_config(env, {"credsStore": "nosuchhelper"})
    with pytest.raises(CredentialsError, match="docker-credential-nosuchhelper is not on PATH"):
        resolve_credentials("reg.example.com")


# -- podman / containers auth files -------------------------------------------------------------


def test_podman_auth_file_locations_in_order(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = _write_json(
        env / ".config" / "containers" / "auth.json",
        {"auths": {"reg.example.com": {"auth": _auth("config", "pw")}}},
    )
    found = find_credentials("reg.example.com")
    assert found is not None
    assert found.source is CredentialSource.CONTAINERS_AUTH
    assert found.detail == str(config_file)
    assert found.description.startswith("from podman auth file")

    runtime = tmp_path / "run"
    _write_json(
        runtime / "containers" / "auth.json",
        {"auths": {"reg.example.com": {"auth": _auth("runtime", "pw")}}},
    )
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert resolve_credentials("reg.example.com") == Credentials("runtime", "pw")

    explicit = _write_json(
        tmp_path / "explicit.json", {"auths": {"reg.example.com": {"auth": _auth("env", "pw")}}}
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(explicit))
    assert resolve_credentials("reg.example.com") == Credentials("env", "pw")
    # A host only a later file knows is still found.
    _write_json(
        runtime / "containers" / "auth.json",
        {"auths": {"late.example.com": {"auth": _auth("late", "pw")}}},
    )
    assert resolve_credentials("late.example.com") == Credentials("late", "pw")


def test_xdg_config_home_is_honoured(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_json(
        tmp_path / "xdgconf" / "containers" / "auth.json",
        {"auths": {"quay.io": {"auth": _auth("xdg", "pw")}}},
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdgconf"))
    assert resolve_credentials("quay.io") == Credentials("xdg", "pw")


def test_podman_per_namespace_keys_are_not_used(env: Path) -> None:
    _write_json(
        env / ".config" / "containers" / "auth.json",
        {"auths": {"quay.io/someorg": {"auth": _auth("narrow", "pw")}}},
    )
    assert resolve_credentials("quay.io") is None


def test_docker_config_beats_podman(env: Path) -> None:
    _docker_config(env, {"auths": {"reg.example.com": {"auth": _auth("docker", "pw")}}})
    _write_json(
        env / ".config" / "containers" / "auth.json",
        {"auths": {"reg.example.com": {"auth": _auth("podman", "pw")}}},
    )
    assert resolve_credentials("reg.example.com") == Credentials("docker", "pw")


def test_podman_docker_hub_key(env: Path) -> None:
    _write_json(
        env / ".config" / "containers" / "auth.json",
        {"auths": {"docker.io": {"auth": _auth("hub", "pw")}}},
    )
    assert resolve_credentials("index.docker.io") == Credentials("hub", "pw")


def test_explicit_keychain_paths(env: Path, tmp_path: Path) -> None:
    cfg = _write_json(
        tmp_path / "d.json", {"auths": {"reg.example.com": {"auth": _auth("d", "pw")}}}
    )
    auth = _write_json(
        tmp_path / "p.json", {"auths": {"reg.example.com": {"auth": _auth("p", "pw")}}}
    )
    chain = MultiKeychain((ContainersAuthKeychain([auth]), DockerConfigKeychain(cfg)))
    found = find_credentials("reg.example.com", keychain=chain)
    assert found is not None and found.credentials.username == "p"


# -- OS keyring -------------------------------------------------------------------------------


def test_keyring_round_trip(env: Path, memkeyring: MemoryKeyring) -> None:
    assert keyring_available()
    _docker_config(env, {"auths": {"reg.example.com:5000": {"auth": _auth("docker", "pw")}}})

    store_credentials("https://Reg.Example.com:5000/", Credentials("alice", SECRET))
    assert list(memkeyring.entries) == [(KEYRING_SERVICE, "reg.example.com:5000")]
    stored = json.loads(memkeyring.entries[(KEYRING_SERVICE, "reg.example.com:5000")])
    assert stored == {"username": "alice", "password": SECRET}

    found = find_credentials("reg.example.com:5000")
    assert found is not None
    assert found.credentials == Credentials("alice", SECRET)
    assert found.source is CredentialSource.KEYRING
    assert found.description == "from OS keyring"

    store_credentials("reg.example.com:5000", Credentials("alice", "rotated"))
    assert resolve_credentials("reg.example.com:5000") == Credentials("alice", "rotated")

    assert delete_credentials("reg.example.com:5000") is True
    assert memkeyring.entries == {}
    assert delete_credentials("reg.example.com:5000") is False
    # With the keyring entry gone, docker config answers.
    assert resolve_credentials("reg.example.com:5000") == Credentials("docker", "pw")


def test_keyring_docker_hub_aliases_share_one_entry(memkeyring: MemoryKeyring) -> None:
    store_credentials("registry-1.docker.io", Credentials("<token>", "hub-id-token"))
    assert list(memkeyring.entries) == [(KEYRING_SERVICE, "docker.io")]
    for name in ("docker.io", "index.docker.io", "https://index.docker.io/v1/"):
        creds = resolve_credentials(name)
        assert creds is not None and creds.is_identity_token
    assert delete_credentials("index.docker.io") is True


def test_keyring_entry_in_another_format_is_ignored(
    memkeyring: MemoryKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    memkeyring.entries[(KEYRING_SERVICE, "reg.example.com")] = SECRET
    with caplog.at_level(logging.DEBUG, logger="hoist.core.registry.credentials"):
        assert resolve_credentials("reg.example.com") is None
    assert "not in Hoist's format" in caplog.text
    assert SECRET not in caplog.text


def test_store_needs_both_halves() -> None:
    with pytest.raises(CredentialsError):
        store_credentials("reg.example.com", Credentials("alice", ""))


def test_locked_keyring_is_a_clear_error_without_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    _install_keyring(monkeypatch, LockedKeyring())
    with pytest.raises(CredentialsError, match="could not read") as info:
        resolve_credentials("reg.example.com")
    assert "KeyringLocked" in str(info.value)
    assert SECRET not in info.value.sentence()
    # Explicit credentials don't need the keyring at all.
    assert resolve_credentials("reg.example.com", "me", "pw") == Credentials("me", "pw")


def test_no_keyring_backend(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_keyring(monkeypatch, fail.Keyring())
    assert not keyring_available()
    with pytest.raises(CredentialsError) as info:
        store_credentials("reg.example.com", Credentials("alice", SECRET))
    err = info.value
    assert "no OS keyring" in err.message
    assert "each session" in err.hint
    assert "never writes a plaintext password file" in err.hint
    assert SECRET not in err.sentence()
    assert delete_credentials("reg.example.com") is False
    # Resolution skips the keyring quietly and reads the files.
    _docker_config(env, {"auths": {"reg.example.com": {"auth": _auth("docker", "pw")}}})
    assert resolve_credentials("reg.example.com") == Credentials("docker", "pw")
    assert KeyringKeychain().resolve("reg.example.com") is None


def test_null_keyring_and_empty_chainer_are_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    _install_keyring(monkeypatch, null.Keyring())
    assert not keyring_available()
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    _install_keyring(monkeypatch, chainer.ChainerBackend())
    assert not keyring_available()
    with pytest.raises(CredentialsError, match="no OS keyring"):
        store_credentials("reg.example.com", Credentials("alice", SECRET))


# -- no secrets shown ---------------------------------------------------------------------------


def test_reprs_hide_secrets(
    env: Path, memkeyring: MemoryKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="hoist.core.registry.credentials"):
        store_credentials("reg.example.com", Credentials("alice", SECRET))
        found = find_credentials("reg.example.com")
        _docker_config(env, {"auths": {"other.example.com": {"auth": _auth("bob", SECRET)}}})
        from_file = find_credentials("other.example.com")
    assert found is not None and from_file is not None
    for obj in (found, from_file, found.credentials, MultiKeychain((KeyringKeychain(),))):
        assert SECRET not in repr(obj)
    assert "alice" in repr(found)
    assert SECRET not in caplog.text
    assert "from OS keyring" in caplog.text


def test_resolved_credentials_is_plain_data() -> None:
    resolved = ResolvedCredentials(Credentials("u", SECRET), CredentialSource.EXPLICIT)
    assert resolved.description == "from entered credentials"
    assert SECRET not in repr(resolved) and SECRET not in str(resolved)
