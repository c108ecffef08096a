"""Where credentials come from: what the user typed, the OS keyring, docker's config."""

from __future__ import annotations

from .auth import Credentials


def resolve_credentials(
    registry: str, username: str | None = None, password: str | None = None
) -> Credentials | None:
    """Credentials for `registry`: explicit ones first."""
    if username is not None and password is not None:
        return Credentials(username, password)
    return None
