"""The window's settings as plain data, kept as JSON in the config folder (no Qt here).

Passwords are never stored here: a registry entry names the username, and the secret lives in
the system keyring (hoist.core.registry.credentials).
The file is written atomically (temp file, fsync,
rename: `hoist.core.statefile.atomic_write`) and carries a `version`;
keys this Hoist doesn't know are
kept, so an older Hoist doesn't erase what a newer one saved.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hoist.core.errors import HoistError, InvalidReference
from hoist.core.oci.reference import parse_registry
from hoist.core.paths import config_dir
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient, TLSOptions
from hoist.core.registry.connect import client_for_host
from hoist.core.statefile import atomic_write
from hoist.core.transfer.push import DEFAULT_BLOBS_AT_ONCE
from hoist.core.transfer.settings import transfer_settings
from hoist.core.transfer.upload import DEFAULT_CHUNK, UploadSettings
from hoist.core.units import MiB

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1
SETTINGS_FILE = "gui-settings.json"
DEMO_REGISTRY_NAME = "Local registry"

#: Bounds the settings dialog enforces (and `load` clamps to, for a hand-edited file).
MIN_CHUNK = 1 * MiB
MAX_CHUNK = 1024 * MiB
MAX_AT_ONCE = 16


@dataclass
class RegistrySettings:
    """One registry the user works with.

    Attributes:
        url: `ghcr.io`, `registry.example.com:8443`, or with a scheme: `http://` forces plain
            HTTP, `https://` forces TLS; without one, TLS is used (plain HTTP is tried for a
            loopback registry that does not speak TLS, as docker does).
        username: empty for anonymous access; the password is in the keyring.
        insecure: skip TLS certificate verification for this host only.
        ca_bundle: a PEM file of extra CA certificates for this host.
        demo: the local demo registry Hoist started itself.
        last_repository, last_tag: what the add sheet proposes next time.
    """

    name: str
    url: str
    username: str = ""
    insecure: bool = False
    ca_bundle: str = ""
    demo: bool = False
    last_repository: str = ""
    last_tag: str = ""

    @property
    def host(self) -> str:
        """The registry host (`ghcr.io`, `127.0.0.1:5000`). Raises InvalidReference."""
        return parse_registry(self.url)

    @property
    def valid(self) -> bool:
        try:
            parse_registry(self.url)
        except InvalidReference:
            return False
        return True

    @property
    def plain_http(self) -> bool | None:
        url = self.url.strip().lower()
        if url.startswith("http://"):
            return True
        if url.startswith("https://"):
            return False
        return None

    def tls(self) -> TLSOptions:
        return TLSOptions(
            ca_bundle=Path(self.ca_bundle) if self.ca_bundle else None, insecure=self.insecure
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "username": self.username,
            "insecure": self.insecure,
            "ca_bundle": self.ca_bundle,
            "demo": self.demo,
            "last_repository": self.last_repository,
            "last_tag": self.last_tag,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RegistrySettings:
        return cls(
            name=str(doc.get("name") or doc.get("url") or "registry"),
            url=str(doc.get("url", "")),
            username=str(doc.get("username") or ""),
            insecure=bool(doc.get("insecure", False)),
            ca_bundle=str(doc.get("ca_bundle") or ""),
            demo=bool(doc.get("demo", False)),
            last_repository=str(doc.get("last_repository") or ""),
            last_tag=str(doc.get("last_tag") or ""),
        )


def _clamp(value: Any, low: int, high: int, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return max(low, min(high, number))


@dataclass
class Settings:
    """Everything the window remembers between runs.

    Attributes:
        chunk_size: bytes per PATCH for new uploads.
        max_active: transfers uploading at once.
        parallel_blobs: blobs at once within one transfer (set when a transfer is planned).
        rate_limit: bytes per second for all uploads together; 0 is no limit.
        resume_on_start: resume the journal's transfers at start-up instead of loading them
            paused.
        ask_before_quit: Quit with transfers running asks first (pause them and quit, keep
            them running, or stay); off once the user ticks "Don't ask again".
    """

    chunk_size: int = DEFAULT_CHUNK
    max_active: int = 2
    parallel_blobs: int = DEFAULT_BLOBS_AT_ONCE
    rate_limit: int = 0
    resume_on_start: bool = False
    ask_before_quit: bool = True
    registries: list[RegistrySettings] = field(default_factory=list)
    selected_registry: str = ""
    demo_declined: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def registry(self, name: str) -> RegistrySettings | None:
        return next((r for r in self.registries if r.name == name), None)

    def registry_for_host(self, host: str) -> RegistrySettings | None:
        for reg in self.registries:
            if reg.valid and reg.host == host:
                return reg
        return None

    @property
    def selected(self) -> RegistrySettings | None:
        return self.registry(self.selected_registry) or (
            self.registries[0] if self.registries else None
        )

    def unique_name(self, wanted: str) -> str:
        names = {r.name for r in self.registries}
        if wanted not in names:
            return wanted
        n = 2
        while f"{wanted} ({n})" in names:
            n += 1
        return f"{wanted} ({n})"

    def upload_settings(self, host: str) -> UploadSettings:
        """UploadSettings for the next run of a transfer to `host`: the same decision as the
        command line's (`hoist.core.transfer.settings.transfer_settings`: the host's learned
        chunk limits and cap apply), with the window's chunk size.

        The window retries for as long as the user lets it run (a laptop that loses Wi-Fi
        overnight resumes in the morning): the user sees the countdown and can pause.
        """
        chunk = None if self.chunk_size == DEFAULT_CHUNK else self.chunk_size
        return transfer_settings(host, chunk_size=chunk, give_up_after=None)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "version": SETTINGS_VERSION,
            "chunk_size": self.chunk_size,
            "max_active": self.max_active,
            "parallel_blobs": self.parallel_blobs,
            "rate_limit": self.rate_limit,
            "resume_on_start": self.resume_on_start,
            "ask_before_quit": self.ask_before_quit,
            "registries": [r.to_json() for r in self.registries],
            "selected_registry": self.selected_registry,
            "demo_declined": self.demo_declined,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Settings:
        known = {
            "version", "chunk_size", "max_active", "parallel_blobs", "rate_limit",
            "resume_on_start", "ask_before_quit", "registries", "selected_registry",
            "demo_declined",
        }  # fmt: skip
        registries = doc.get("registries") or []
        return cls(
            chunk_size=_clamp(doc.get("chunk_size"), MIN_CHUNK, MAX_CHUNK, DEFAULT_CHUNK),
            max_active=_clamp(doc.get("max_active"), 1, MAX_AT_ONCE, 2),
            parallel_blobs=_clamp(doc.get("parallel_blobs"), 1, MAX_AT_ONCE, DEFAULT_BLOBS_AT_ONCE),
            rate_limit=_clamp(doc.get("rate_limit"), 0, 2**62, 0),
            resume_on_start=bool(doc.get("resume_on_start", False)),
            ask_before_quit=bool(doc.get("ask_before_quit", True)),
            registries=[RegistrySettings.from_json(r) for r in registries if isinstance(r, dict)],
            selected_registry=str(doc.get("selected_registry") or ""),
            demo_declined=bool(doc.get("demo_declined", False)),
            extra={k: v for k, v in doc.items() if k not in known},
        )


class SettingsError(HoistError):
    hint = "Hoist started with default settings; fix or delete the file to get yours back"


class SettingsStore:
    """Reads and writes Settings as JSON (`<config dir>/gui-settings.json`)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / SETTINGS_FILE

    def load(self) -> tuple[Settings, str | None]:
        """The saved settings, or defaults and a sentence saying why the file was not used."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Settings(), None
        except OSError as exc:
            return Settings(), SettingsError(f"can't read {self.path}: {exc.strerror}").sentence()
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            return Settings(), SettingsError(f"{self.path} is not valid settings JSON").sentence()
        if int(doc.get("version", 0) or 0) > SETTINGS_VERSION:
            log.info("settings written by a newer Hoist; unknown keys are kept")
        return Settings.from_json(doc), None

    def save(self, settings: Settings) -> None:
        """Write atomically (blocking but small: a few hundred bytes and one fsync)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(settings.to_json(), indent=1).encode())


def make_client(registry: RegistrySettings, credentials: Credentials | None) -> RegistryClient:
    """A client for the registry as the user set it up (scheme, TLS choices, username), built
    as the command line builds one (close it with `aclose`). `credentials`: what the window
    holds for it (looked up ahead, or typed for this session); None: the keychain is asked
    when the registry asks."""
    return client_for_host(
        registry.host,
        plain_http=registry.plain_http,
        tls=registry.tls(),
        credentials=credentials,
        username=registry.username or None,
    )


__all__ = [
    "DEMO_REGISTRY_NAME",
    "RegistrySettings",
    "Settings",
    "SettingsError",
    "SettingsStore",
    "make_client",
]
