"""The one place that builds a RegistryClient for a registry host.

The command line, the transfer queue and the window each reach registries the user names; built
here, they talk to the same API host (Docker Hub's differs from its name), with the same scheme
rule and TLS choices, and find credentials the same way: the ones the caller holds (typed,
given on stdin, kept for a session), else the keychain (keyring, docker config), asked in a
worker thread only when the registry asks for credentials.
"""

from __future__ import annotations

import functools

from hoist.core.oci.reference import Reference
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient, TLSOptions
from hoist.core.registry.credentials import resolve_credentials


def client_for_host(
    registry: str,
    *,
    plain_http: bool | None = None,
    tls: TLSOptions | None = None,
    credentials: Credentials | None = None,
    username: str | None = None,
) -> RegistryClient:
    """A client for `registry` (close it with `aclose`, or use `async with`).

    Args:
        registry: the registry as the user names it (`docker.io`, `ghcr.io`,
            `localhost:5000`): the name its credentials are kept under.
        plain_http: True forces http://, False https://; None picks https, or http for a
            loopback registry that does not answer TLS.
        tls: the user's TLS choices for this host (default: verify with the system's CAs).
        credentials: credentials the caller already holds; they are used as they are.
        username: without `credentials`, which of the keychain's logins for this registry.
    """
    lookup = None if credentials else functools.partial(resolve_credentials, registry, username)
    return RegistryClient(
        Reference(registry, repository="").api_host,
        credentials=credentials,
        credentials_lookup=lookup,
        plain_http=plain_http,
        tls=tls or TLSOptions(),
    )
