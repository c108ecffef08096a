"""Where credentials come from: what the user typed, the OS keyring, docker's and podman's files.

Modelled on go-containerregistry's `pkg/authn/keychain.go`: a *keychain* answers "credentials
for this registry?" with credentials or None, and `MultiKeychain` asks several in order, the
first answer wins. The default order is

1. explicit credentials (typed in, `--username` + `--password-stdin`);
2. the OS keyring (what `hoist login` stored);
3. docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`);
4. podman's / containers' auth files: `$REGISTRY_AUTH_FILE`,
   `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`
   (`~/.config/containers/auth.json`), each tried in turn.

Inside one docker or containers file the order is docker's: `credHelpers[host]`, then
`credsStore`, then the inline `auths` entry. Unlike docker, an inline entry is still used when
the helper has nothing for the host (docker would send no credentials at all).

Keyring layout: service ``"hoist"``, account = the registry's canonical host (`docker.io` for
Docker Hub, else `host[:port]` in lower case), secret = a JSON object
``{"username": ..., "password": ...}``. One entry holds both halves so they are written and
deleted together; an identity token is stored with username ``"<token>"`` as docker does.

Every function here is synchronous (keyring backends and credential helpers block, and may
show an unlock prompt): GUI and async callers run them with ``asyncio.to_thread``.

No secret is ever logged or put in an exception message, and the repr of everything that
holds one hides it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

from hoist.core.errors import CredentialsError
from hoist.core.registry.auth import Credentials

log = logging.getLogger(__name__)

#: The keyring service name under which every registry's entry lives.
KEYRING_SERVICE = "hoist"
#: The key docker uses for Docker Hub in `auths` and when asking a credential helper.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOST = "docker.io"
#: Names that all mean Docker Hub.
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
#: Key paths that still name a whole registry (`https://index.docker.io/v1/`); any other path
#: (podman's per-namespace `quay.io/org`) is a narrower entry Hoist does not use.
_REGISTRY_PATHS = frozenset({"", "/", "/v1", "/v1/", "/v2", "/v2/"})
#: How long a credential helper may take (ecr-login asks AWS; desktop may prompt).
HELPER_TIMEOUT = 60.0
_NO_KEYRING_HINT = (
    "Hoist will ask for the password each session instead; it never writes a plaintext "
    "password file. To remember it, install and unlock a keyring service "
    "(GNOME Keyring or KWallet via Secret Service, macOS Keychain, Windows Credential Manager)"
)


class CredentialSource(enum.Enum):
    """Where a credential came from, for the GUI to say ("from docker config")."""

    EXPLICIT = "explicit"
    KEYRING = "keyring"
    DOCKER_CONFIG = "docker-config"
    CREDENTIAL_HELPER = "credential-helper"
    CONTAINERS_AUTH = "containers-auth"

    @property
    def label(self) -> str:
        """A few words for a person."""
        return _LABELS[self]


_LABELS = {
    CredentialSource.EXPLICIT: "entered credentials",
    CredentialSource.KEYRING: "OS keyring",
    CredentialSource.DOCKER_CONFIG: "docker config",
    CredentialSource.CREDENTIAL_HELPER: "docker credential helper",
    CredentialSource.CONTAINERS_AUTH: "podman auth file",
}


@dataclass(frozen=True)
class ResolvedCredentials:
    """Credentials and where they were found.

    Attributes:
        credentials: the username and secret (its repr hides the secret).
        source: which kind of store answered.
        detail: which one: a file path or a helper name ("" for explicit and keyring).
    """

    credentials: Credentials
    source: CredentialSource
    detail: str = ""

    @property
    def description(self) -> str:
        """`from docker config (/home/me/.docker/config.json)`: for a tooltip or a log line."""
        text = f"from {self.source.label}"
        return f"{text} ({self.detail})" if self.detail else text


class Keychain(Protocol):
    """Anything that may know credentials for a registry."""

    def resolve(self, registry: str) -> ResolvedCredentials | None:
        """Credentials for `registry` (a host as written: `docker.io`, `host:5000`), or None.

        Raises CredentialsError when the store exists but can't be read; "nothing stored"
        is None, so the next keychain is asked.
        """
        ...


# -- host names -------------------------------------------------------------------------------


def registry_host(registry: str) -> str:
    """The canonical host of a registry name or config key.

    Strips a scheme and a path, lower-cases, and maps every Docker Hub alias to `docker.io`:
    `https://index.docker.io/v1/` → `docker.io`, `HTTP://Reg.example:5000/` → `reg.example:5000`.
    """
    host = registry.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB_HOST if host in DOCKER_HUB_ALIASES else host


def _key_host(key: str) -> str | None:
    """The canonical host a config key stands for, or None for a per-repository key."""
    rest = key.strip()
    if "://" in rest:
        rest = rest.split("://", 1)[1]
    host, slash, path = rest.partition("/")
    if (slash + path) not in _REGISTRY_PATHS:
        return None
    return registry_host(host)


def _helper_server_url(host: str) -> str:
    """What docker hands a credential helper for this host (what `docker login` stored)."""
    return DOCKER_HUB_KEY if host == DOCKER_HUB_HOST else host


# -- OS keyring -------------------------------------------------------------------------------


def _keyring() -> KeyringBackend:
    """The OS keyring backend. keyring is imported here, on first use: a push to an anonymous
    registry never needs it, and importing it costs 20 ms of every run of the CLI."""
    import keyring

    return keyring.get_keyring()


def _backend_usable(backend: KeyringBackend) -> bool:
    """False for keyring's fail / null backends, an empty chainer, and plaintext files."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return any(_backend_usable(b) for b in chainer.ChainerBackend.backends)
    cls = type(backend)
    # keyrings.alt's PlaintextKeyring would write the password to a file as it is.
    return not (cls.__module__.startswith("keyrings.alt") and "Plaintext" in cls.__name__)


def keyring_available() -> bool:
    """Whether an OS keyring can hold passwords here (False on a headless box without one)."""
    try:
        return _backend_usable(_keyring())
    except Exception:  # a broken keyring config or plugin: behave as if there is none
        log.debug("keyring backend detection failed", exc_info=True)
        return False


def _require_keyring() -> KeyringBackend:
    backend = _keyring()
    if not _backend_usable(backend):
        raise CredentialsError(
            f"no OS keyring is available to store credentials ({_backend_name(backend)})",
            hint=_NO_KEYRING_HINT,
        )
    return backend


def _backend_name(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"keyring backend {cls.__module__}.{cls.__name__}"


def _keyring_failed(action: str, host: str, exc: Exception) -> CredentialsError:
    """A CredentialsError naming the failure's type only: a backend's message may quote data.

    Typing the password in is a way around a keyring that can't be read, not around one that
    can't store (a login just typed it) or delete.
    """
    hint = "Unlock the keyring and try again"
    if action == "read":
        hint += ", or enter the username and password"
    return CredentialsError(
        f"the OS keyring could not {action} the entry for {host} ({type(exc).__name__})",
        hint=hint,
    )


class KeyringKeychain:
    """Entries `hoist login` stored in the OS keyring (layout in the module docstring)."""

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        self.service = service

    def __repr__(self) -> str:
        return f"KeyringKeychain(service={self.service!r})"

    def resolve(self, registry: str) -> ResolvedCredentials | None:
        if not keyring_available():
            return None
        host = registry_host(registry)
        try:
            secret = _keyring().get_password(self.service, host)
        except Exception as exc:  # backends raise their own types (DBus, Win32...)
            raise _keyring_failed("read", host, exc) from None
        if secret is None:
            return None
        creds = _decode_keyring_secret(secret)
        if creds is None:
            log.warning("ignoring keyring entry %s/%s: not in Hoist's format", self.service, host)
            return None
        return ResolvedCredentials(creds, CredentialSource.KEYRING)


def _decode_keyring_secret(secret: str) -> Credentials | None:
    try:
        doc = json.loads(secret)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    username, password = doc.get("username"), doc.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        return None
    return Credentials(username, password)


def store_credentials(
    registry: str, credentials: Credentials, *, service: str = KEYRING_SERVICE
) -> None:
    """Remember credentials for `registry` in the OS keyring (replacing what was there).

    Raises CredentialsError when there is no usable keyring: Hoist has no plaintext fallback.
    """
    if not credentials.username or not credentials.password:
        raise CredentialsError("both a username and a password are needed to store credentials")
    host = registry_host(registry)
    backend = _require_keyring()
    secret = json.dumps({"username": credentials.username, "password": credentials.password})
    try:
        backend.set_password(service, host, secret)
    except Exception as exc:
        raise _keyring_failed("store", host, exc) from None
    log.info("stored credentials for %s in the OS keyring", host)


def delete_credentials(registry: str, *, service: str = KEYRING_SERVICE) -> bool:
    """Forget `registry`'s keyring entry. True if one was deleted, False if there was none
    (also when there is no keyring at all: nothing can be stored there)."""
    if not keyring_available():
        return False
    host = registry_host(registry)
    backend = _keyring()
    try:
        if backend.get_password(service, host) is None:
            return False
        backend.delete_password(service, host)
    except Exception as exc:
        raise _keyring_failed("delete", host, exc) from None
    log.info("deleted credentials for %s from the OS keyring", host)
    return True


# -- docker credential helpers ----------------------------------------------------------------


def run_credential_helper(name: str, server_url: str) -> Credentials | None:
    """Ask `docker-credential-<name> get` for `server_url` (docker-credential-helpers protocol).

    None when the helper says "credentials not found"; CredentialsError on any other failure.
    """
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise CredentialsError(
            f"the docker config names the credential helper {name!r}, but {program} is not on PATH",
            hint=f"Install {program}, remove it from the docker config, or enter the username "
            "and password",
        )
    try:
        proc = subprocess.run(
            [path, "get"],
            input=server_url.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CredentialsError(
            f"{program} did not answer within {HELPER_TIMEOUT:.0f} s",
            hint="It may be waiting for an unlock prompt; unlock it and try again",
        ) from None
    except OSError as exc:
        raise CredentialsError(f"{program} could not be run ({exc.strerror or exc})") from None
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        said = (out.strip() or proc.stderr.decode("utf-8", "replace").strip()).splitlines()
        first = said[0][:200] if said else ""
        if "credentials not found" in first.lower():
            return None
        # Quote the helper's complaint unless it looks like data that might hold a secret.
        detail = (
            f": {first}" if first and "{" not in first and "secret" not in first.lower() else ""
        )
        raise CredentialsError(
            f"{program} failed with exit status {proc.returncode}{detail}",
            hint="Check the credential helper (is it logged in / unlocked?), or enter the "
            "username and password",
        )
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{program} answered something that is not credentials JSON")
    username, secret = doc.get("Username", ""), doc.get("Secret", "")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialsError(f"{program} answered credentials JSON of the wrong shape")
    if not secret:
        return None
    return Credentials(username, secret)


# -- docker config.json and containers auth.json -----------------------------------------------


def docker_config_path() -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (docker's own rule)."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def containers_auth_paths() -> list[Path]:
    """Podman's auth files in the order containers/image reads them."""
    paths: list[Path] = []
    if explicit := os.environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(explicit))
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(runtime) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths.append(Path(config_home) / "containers" / "auth.json")
    return list(dict.fromkeys(paths))


def _load_json_file(path: Path) -> dict[str, Any] | None:
    """The file's JSON object, None if it does not exist; CredentialsError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialsError(
            f"can't read {path} ({exc.strerror or type(exc).__name__})",
            hint="Fix its permissions, or enter the username and password",
        ) from None
    if not text.strip():
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CredentialsError(
            f"{path} is not a valid JSON object", hint="Fix or remove the file, then try again"
        )
    return doc


def _matching_keys(mapping: dict[str, Any], host: str) -> Iterator[str]:
    """Keys of `mapping` that stand for `host`: docker's own key first, then in file order."""
    preferred = _helper_server_url(host)
    if preferred in mapping:
        yield preferred
    for key in mapping:
        if key != preferred and _key_host(key) == host:
            yield key


def _decode_auth_entry(entry: Any, key: str, path: Path) -> Credentials | None:
    """Credentials from one `auths` entry: `identitytoken`, `auth`, or `username`/`password`."""
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials("<token>", token)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            raw = base64.b64decode(auth + "=" * (-len(auth) % 4)).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(
                f"the `auth` value for {key!r} in {path} is not valid base64",
                hint="Log in again with docker or podman, or fix the file",
            ) from None
        username, sep, password = raw.partition(":")
        if not sep:
            raise CredentialsError(
                f"the `auth` value for {key!r} in {path} is not username:password",
                hint="Log in again with docker or podman, or fix the file",
            )
        return Credentials(username, password) if username or password else None
    plain_user, plain_password = entry.get("username"), entry.get("password")
    if isinstance(plain_user, str) and isinstance(plain_password, str) and plain_password:
        return Credentials(plain_user, plain_password)
    return None


def resolve_from_auth_file(
    doc: dict[str, Any], path: Path, registry: str, source: CredentialSource
) -> ResolvedCredentials | None:
    """Credentials for `registry` from a docker-format auth document read from `path`.

    `credHelpers[host]`, then `credsStore`, then the inline `auths` entry.
    """
    host = registry_host(registry)
    helpers = doc.get("credHelpers")
    helper: str | None = None
    if isinstance(helpers, dict):
        helper = next((str(helpers[k]) for k in _matching_keys(helpers, host) if helpers[k]), None)
    store = doc.get("credsStore")
    if helper is None and isinstance(store, str) and store:
        helper = store
    if helper is not None:
        creds = run_credential_helper(helper, _helper_server_url(host))
        if creds is not None:
            return ResolvedCredentials(
                creds, CredentialSource.CREDENTIAL_HELPER, f"docker-credential-{helper}"
            )
    auths = doc.get("auths")
    if isinstance(auths, dict):
        for key in _matching_keys(auths, host):
            creds = _decode_auth_entry(auths[key], key, path)
            if creds is not None:
                return ResolvedCredentials(creds, source, str(path))
    return None


class DockerConfigKeychain:
    """docker's `config.json`; the path is found at each resolve unless given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"DockerConfigKeychain(path={self.path!r})"

    def resolve(self, registry: str) -> ResolvedCredentials | None:
        path = self.path or docker_config_path()
        doc = _load_json_file(path)
        if doc is None:
            return None
        return resolve_from_auth_file(doc, path, registry, CredentialSource.DOCKER_CONFIG)


class ContainersAuthKeychain:
    """podman / containers auth files, each tried in turn; paths found at each resolve."""

    def __init__(self, paths: Sequence[Path] | None = None) -> None:
        self.paths = list(paths) if paths is not None else None

    def __repr__(self) -> str:
        return f"ContainersAuthKeychain(paths={self.paths!r})"

    def resolve(self, registry: str) -> ResolvedCredentials | None:
        for path in self.paths if self.paths is not None else containers_auth_paths():
            doc = _load_json_file(path)
            if doc is None:
                continue
            found = resolve_from_auth_file(doc, path, registry, CredentialSource.CONTAINERS_AUTH)
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class MultiKeychain:
    """Asks each keychain in order; the first that knows the registry answers."""

    keychains: tuple[Keychain, ...] = field(default_factory=tuple)

    def resolve(self, registry: str) -> ResolvedCredentials | None:
        for keychain in self.keychains:
            found = keychain.resolve(registry)
            if found is not None:
                return found
        return None


def default_keychain() -> MultiKeychain:
    """Keyring, then docker config, then podman auth files."""
    return MultiKeychain((KeyringKeychain(), DockerConfigKeychain(), ContainersAuthKeychain()))


# -- the entry points ---------------------------------------------------------------------------


def find_credentials(
    registry: str,
    username: str | None = None,
    password: str | None = None,
    *,
    keychain: Keychain | None = None,
) -> ResolvedCredentials | None:
    """Credentials for `registry` and where they came from, or None for anonymous access.

    A username and password given here win. A username alone picks the first stored
    credentials for that username. A password alone is an error: it would be dropped silently.
    """
    if password is not None and not username:
        raise CredentialsError(
            "a password was given without a username", hint="Give the username as well"
        )
    if username and password is not None:
        return ResolvedCredentials(Credentials(username, password), CredentialSource.EXPLICIT)
    chain = keychain if keychain is not None else default_keychain()
    if not username:
        found = chain.resolve(registry)
    else:
        found = _first_with_username(_each_keychain(chain), registry, username)
    if found is not None:
        log.debug("credentials for %s %s", registry_host(registry), found.description)
    return found


def _each_keychain(chain: Keychain) -> Iterable[Keychain]:
    return chain.keychains if isinstance(chain, MultiKeychain) else (chain,)


def _first_with_username(
    keychains: Iterable[Keychain], registry: str, username: str
) -> ResolvedCredentials | None:
    for keychain in keychains:
        found = keychain.resolve(registry)
        if found is not None and found.credentials.username == username:
            return found
    return None


def resolve_credentials(
    registry: str, username: str | None = None, password: str | None = None
) -> Credentials | None:
    """Credentials for `registry`: explicit ones first, then the default keychain."""
    found = find_credentials(registry, username, password)
    return found.credentials if found is not None else None
