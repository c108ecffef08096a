"""Running and discarding a transfer of any kind: the one place that knows a push from a
download, so the queue and the command line never branch on it themselves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hoist.core.errors import HoistError
from hoist.core.progress import ProgressCallback
from hoist.core.registry.client import RegistryClient
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import (
    Download,
    JournaledRun,
    Push,
    Transfer,
    discard_staging,
)
from hoist.core.transfer.push import (
    TransferRun,
)
from hoist.core.transfer.upload import (
    UploadSettings,
)


def open_run(
    transfer: Transfer,
    client: RegistryClient,
    *,
    journal: TransferJournal | None = None,
    settings: UploadSettings | None = None,
    on_event: ProgressCallback | None = None,
    pause: asyncio.Event | None = None,
) -> JournaledRun:
    """The run for a transfer's type: TransferRun for a Push, DownloadRun for a Download."""
    if isinstance(transfer, Download):
        from hoist.core.transfer.download import (
            DownloadRun,  # with browsing: loaded only when a download runs
        )

        chosen = settings or UploadSettings()
        return DownloadRun(
            transfer, client, journal=journal, retry=chosen.retry, throttle=chosen.throttle,
            on_event=on_event, pause=pause,
        )  # fmt: skip
    return TransferRun(
        transfer, client, journal=journal, settings=settings, on_event=on_event, pause=pause
    )


@dataclass
class Discarded:
    """What throwing a cancelled transfer's work away could not do, as sentences."""

    sessions: list[str] = field(default_factory=list)  # upload sessions left (they expire)
    files: list[str] = field(default_factory=list)  # a download's files left on disk


async def discard_work(transfer: Transfer, client: RegistryClient) -> Discarded:
    """Throw away what a cancelled transfer holds: its open upload sessions (DELETE), a
    download's partial files, and the files it staged. Goes on past each refusal."""
    discarded = Discarded()
    if isinstance(transfer, Download):
        from hoist.core.transfer.download import discard_partial_files

        discarded.files = await asyncio.to_thread(discard_partial_files, transfer)
    else:
        discarded.sessions = await _cancel_sessions(transfer, client)
    await asyncio.to_thread(discard_staging, transfer.id)
    return discarded


async def _cancel_sessions(transfer: Push, client: RegistryClient) -> list[str]:
    """DELETE a push's open upload sessions; the sentences for those the registry refused."""
    refused = []
    for blob in transfer.blobs:
        if blob.location and not blob.finished:
            try:
                await client.cancel_upload(blob.location)
            except HoistError as exc:  # the session may be gone already
                # Not the error's hint: "check the repository name" is no advice here.
                refused.append(
                    f"{blob.name}: could not remove its upload session ({exc.message}); "
                    "the registry discards it when it expires"
                )
    return refused
