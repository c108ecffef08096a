"""A registry client and upload settings from a command's flags (`--plain-http`, `-u`,
`--password-stdin`, `--chunk-size`, `--limit-rate`, `--retry-for`), over the one place a client
for a host is built (`hoist.core.registry.connect`)."""

from __future__ import annotations

import argparse
import sys

from hoist.core.oci.reference import Reference, parse_reference, parse_registry
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.connect import client_for_host
from hoist.core.transfer.settings import transfer_settings
from hoist.core.transfer.upload import UploadSettings
from hoist.core.units import parse_rate


def _given_credentials(args: argparse.Namespace, host: str) -> Credentials | None:
    """Credentials given now (a password on stdin); without them the client asks the
    keychain (keyring, docker config) only if the registry asks for credentials."""
    from hoist.core.registry.credentials import resolve_credentials

    if not getattr(args, "password_stdin", False):
        return None
    # Read once: `hoist resume --all` opens a client per transfer, and stdin has one line.
    if getattr(args, "password", None) is None:
        args.password = sys.stdin.readline().rstrip("\n")
    return resolve_credentials(host, getattr(args, "username", None), args.password)


def client_for_args(
    args: argparse.Namespace, ref: Reference, plain_http: bool | None = None
) -> RegistryClient:
    """A client for `ref`'s registry as the flags ask (plain HTTP, a username, a password on
    stdin); `plain_http` is what a journaled transfer recorded, which `--plain-http` overrides."""
    return client_for_host(
        ref.registry,
        plain_http=True if getattr(args, "plain_http", False) else plain_http,
        credentials=_given_credentials(args, ref.registry),
        username=getattr(args, "username", None),
    )


def settings_for_args(args: argparse.Namespace, host: str) -> UploadSettings:
    """Upload settings from the flags, the host's learned profile and the rate cap."""
    chunk = getattr(args, "chunk_size", None)
    return transfer_settings(
        host,
        chunk_size=chunk or None,
        limit_rate=parse_rate(args.limit_rate) if args.limit_rate else None,
        give_up_after=float(args.retry_for) if args.retry_for else None,
    )


def registry_client_for_args(args: argparse.Namespace, registry: str) -> RegistryClient:
    """A client for a registry named alone (`hoist catalog HOST`)."""
    return client_for_args(args, parse_reference(f"{parse_registry(registry)}/x"))
