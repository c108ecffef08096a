"""The services the window works with, and the demo registry it can start.

Built once by `hoist.gui.app` (or by tests) and handed to the window: settings and their
store, the transfer queue over the journal, the credential cache, the demo registry.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from hoist.core.bandwidth import BandwidthLimiter
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.connect import client_for_host
from hoist.core.registry.demo_registry import DemoRegistry
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import Transfer
from hoist.core.transfer.queue import TransferQueue
from hoist.gui.add.planning import CredentialCache
from hoist.gui.settings.store import (
    DEMO_REGISTRY_NAME,
    RegistrySettings,
    Settings,
    SettingsStore,
    make_client,
)

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    """The services the window works with (built by `hoist.gui.app`, or by tests)."""

    settings: Settings
    store: SettingsStore
    queue: TransferQueue
    credentials: CredentialCache
    demo: DemoRegistry | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, store: SettingsStore | None = None) -> AppContext:
        """Settings from disk and a queue over the journal (no transfer is loaded yet)."""
        store = store or SettingsStore()
        settings, problem = store.load()
        credentials = CredentialCache()
        ctx: AppContext

        def upload_settings(transfer: Transfer) -> Any:
            return ctx.settings.upload_settings(transfer.reference.api_host)

        def client_for(transfer: Transfer) -> RegistryClient:
            """The transfer's registry as the user set it up (TLS choices, credentials)."""
            host = transfer.reference.registry
            registry = ctx.settings.registry_for_host(host)
            creds = credentials.get(host)
            if registry is None:  # not in Settings: as `hoist push` would reach it
                return client_for_host(host, plain_http=transfer.plain_http, credentials=creds)
            return make_client(registry, creds)

        queue = TransferQueue(
            TransferJournal(),
            settings=upload_settings,
            credentials=credentials.get,
            max_active=settings.max_active,
            limiter=BandwidthLimiter(settings.rate_limit),
            client_factory=client_for,
            window_words=True,
        )
        ctx = cls(settings, store, queue, credentials)
        if problem:
            ctx.problems.append(problem)
        return ctx

    async def save_settings(self) -> None:
        """Write the settings in a worker thread (one fsync); a failure is logged and shown."""
        await asyncio.to_thread(self.store.save, self.settings)


async def start_demo_registry(ctx: AppContext) -> RegistrySettings:
    """Start (or restart) the demo registry and make sure settings list it.

    The port saved in the registry's URL is reused so the journal's transfers still point at
    it; when another program took it, a new port is used and the entry updated.
    """
    existing = next((r for r in ctx.settings.registries if r.demo), None)
    port = 0
    if existing is not None and existing.valid:
        _, _, text = existing.host.rpartition(":")
        port = int(text) if text.isdigit() else 0
    demo = ctx.demo or DemoRegistry(port=port)
    ctx.demo = demo
    host = await demo.start()
    url = f"http://{host}"
    if existing is None:
        existing = RegistrySettings(ctx.settings.unique_name(DEMO_REGISTRY_NAME), url, demo=True)
        ctx.settings.registries.append(existing)
    elif existing.url != url:
        log.warning("demo registry moved from %s to %s", existing.url, url)
        existing.url = url
    if not ctx.settings.selected_registry or ctx.settings.selected is existing:
        ctx.settings.selected_registry = existing.name
    await ctx.save_settings()
    return existing
