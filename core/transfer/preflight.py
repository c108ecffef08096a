"""What to check before a push: one answer for the window and the CLI.

Checked before a long plan (packing a folder, hashing an image) so that a registry that is down,
credentials that are refused or push rights that are missing are said in seconds, not after
minutes of work: ping → is the tag already there (unless overwriting was chosen) → may these
credentials push. An existing tag is not an error: the caller asks (the window) or follows
its flags (the CLI overwrites, as `docker push` and `oras push` do).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from hoist.core.errors import HoistError
from hoist.core.oci.digest import sha256_bytes
from hoist.core.oci.manifest import OCI_EMPTY_DATA
from hoist.core.oci.reference import Reference
from hoist.core.registry.client import RegistryClient


@dataclass(frozen=True)
class PushCheck:
    """The outcome of `check_before_push`.

    Attributes:
        existing: the digest of the manifest the target tag names already (ask before
            replacing it), or None: ready to plan and push.
    """

    existing: str | None = None

    @property
    def ready(self) -> bool:
        return self.existing is None


async def check_before_push(
    client: RegistryClient, target: Reference, *, overwrite: bool
) -> PushCheck:
    """Check that a push to `target` can go ahead; `overwrite`: replacing the tag was chosen.

    Raises the registry's typed error (RegistryNotAnswering, AuthenticationFailed,
    AccessDenied...), whose sentence says what to do.
    """
    await client.ping()
    if not overwrite:
        existing = await client.head_manifest(target.repository, target.manifest_ref)
        if existing is not None:
            return PushCheck(existing=existing)
    await check_push_access(client, target.repository)
    return PushCheck()


async def check_push_access(client: RegistryClient, repository: str) -> None:
    """Prove the credentials may push to `repository` before a long upload is planned
    (packing a folder, hashing an image): registries check push rights when a session opens.

    The session is then used, not left behind: it commits the 2-byte empty config `{}` (the
    config of every artifact Hoist pushes; a tiny orphan for an image). A DELETE would not
    do: distribution 2.8 answers 204 and keeps the session's folder, since it writes the
    hash state back after the cancel.

    Raises the registry's error (AuthenticationFailed, AccessDenied...), whose sentence says
    what to do.
    """
    status = await client.start_upload(repository)
    if status is None:  # pragma: no cover - only a mount answers 201
        return
    try:
        await client.finish_upload(
            status.location, sha256_bytes(OCI_EMPTY_DATA), OCI_EMPTY_DATA, len(OCI_EMPTY_DATA)
        )
    except HoistError:
        with contextlib.suppress(HoistError):  # optional for registries; it expires anyway
            await client.cancel_upload(status.location)
        raise


__all__ = ["PushCheck", "check_before_push", "check_push_access"]
