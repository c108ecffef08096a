"""The Browse area: repositories and tags paged as they scroll, details, download, delete.

Against the real distribution 2.8 registry; `httpx.MockTransport` only where it can't give
the answer (a registry without `_catalog`), and a thin paging wrapper over the real registry
for tag pages (distribution 2.8 sends every tag in one page; distribution 3, GHCR and Harbor
page them with a Link header).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pushing import push_paths
from PySide6.QtCore import QModelIndex, QObject, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLineEdit, QWidget
from pytestqt.qtbot import QtBot
from support.images import write_oci_layout
from support.registry import DEFAULT_PASSWORD as AUTH_PASSWORD
from support.registry import DEFAULT_USER as AUTH_USER
from support.registry import RegistryFactory, RegistryProcess

from hoist.core.oci.reference import parse_reference
from hoist.core.registry.browse import (
    BlobInfo,
    ManifestInfo,
    ManifestKind,
    PlatformInfo,
    ReferrerInfo,
)
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.deletion import DeletePlan, delete_plan
from hoist.core.transfer.push import TransferRun, plan_image_push
from hoist.core.units import format_size
from hoist.gui.add.planning import CredentialCache
from hoist.gui.browse.actions import PaneState, browse_actions
from hoist.gui.browse.deleting import delete_message, delete_outcome
from hoist.gui.browse.downloads import download_platform
from hoist.gui.browse.layout import visible_source_rows
from hoist.gui.browse.manifest_details import DetailRow, ManifestDetailModel, manifest_details
from hoist.gui.browse.models import (
    LOADING_DATE,
    LOADING_SIZE,
    NameFilterProxy,
    RepositoryModel,
    format_created,
    size_text,
)
from hoist.gui.browse.pane import BrowsePane
from hoist.gui.browse.tag_model import DetailState, TagColumn, TagModel, TagSortProxy
from hoist.gui.settings.store import RegistrySettings
from hoist.gui.widgets.dialogs import ConfirmDialog

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = b"{}"
TIMEOUT = 120


# -- helpers --------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def artifact_manifest(layer: bytes, created: str, note: str = "") -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.hoist.test",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(EMPTY),
                   "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha(layer),
                    "size": len(layer), "annotations": {"org.opencontainers.image.title": "f"}}],
        "annotations": {"org.opencontainers.image.created": created, "note": note},
    }  # fmt: skip
    return json.dumps(doc, separators=(",", ":")).encode()


async def put_blob(c: httpx.AsyncClient, repo: str, data: bytes) -> str:
    r = await c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    url = httpx.URL(str(c.base_url)).join(r.headers["Location"]).copy_add_param("digest", sha(data))
    r = await c.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return sha(data)


async def put_manifest(c: httpx.AsyncClient, repo: str, ref: str, data: bytes) -> None:
    r = await c.put(f"/v2/{repo}/manifests/{ref}", content=data,
                    headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
    assert r.status_code == 201, r.text


async def bounded(calls: list[Any], limit: int = 16) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Any) -> None:
        async with semaphore:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def seed_repositories(url: str, count: int, prefix: str = "gui-catalog/repo") -> None:
    """`count` repositories with one tiny manifest each (layer mounted from the first)."""
    layer = b"catalog layer"
    manifest = artifact_manifest(layer, "2024-01-01T00:00:00Z")
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        first = f"{prefix}-000"
        await put_blob(c, first, EMPTY)
        await put_blob(c, first, layer)
        await put_manifest(c, first, "v1", manifest)

        async def repo(i: int) -> None:
            name = f"{prefix}-{i:03d}"
            for blob in (EMPTY, layer):
                r = await c.post(f"/v2/{name}/blobs/uploads/",
                                 params={"mount": sha(blob), "from": first})  # fmt: skip
                assert r.status_code == 201, r.text
            await put_manifest(c, name, "v1", manifest)

        await bounded([lambda i=i: repo(i) for i in range(1, count)])


#: Three manifests, each with its own size and date; tags cycle through them.
VARIANTS = [
    (b"a" * 1000, "2024-03-01T10:00:00Z"),
    (b"b" * 5000, "2024-05-01T10:00:00Z"),
    (b"c" * 20000, "2023-01-01T10:00:00.123456789Z"),
]


def variant_of(i: int) -> int:
    return i % len(VARIANTS)


async def seed_tags(url: str, repo: str, count: int) -> list[str]:
    """`count` tags (`t000`...) over the three VARIANTS manifests."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        await put_blob(c, repo, EMPTY)
        manifests = []
        for n, (layer, created) in enumerate(VARIANTS):
            await put_blob(c, repo, layer)
            manifests.append(artifact_manifest(layer, created, note=str(n)))
        tags = [f"t{i:03d}" for i in range(count)]
        await bounded(
            [lambda i=i: put_manifest(c, repo, tags[i], manifests[variant_of(i)])
             for i in range(count)]
        )  # fmt: skip
    return tags


class CountingTransport(httpx.AsyncBaseTransport):
    """The real network, with every request noted (method, path, query)."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, request.url.query.decode()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and path_part in p)


class PagingTags(httpx.AsyncBaseTransport):
    """Pages `tags/list` by `n` and `last` with a Link header, over the real registry.

    distribution 2.8 ignores `n` there and sends every tag in one page; registries that page
    tags (distribution 3, GHCR, Harbor) answer like this.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.pages = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method != "GET" or not path.endswith("/tags/list"):
            return await self.inner.handle_async_request(request)
        n = int(request.url.params.get("n", "0") or 0)
        last = request.url.params.get("last")
        whole = httpx.Request("GET", request.url.copy_with(query=None), headers=request.headers)
        response = await self.inner.handle_async_request(whole)
        body = await response.aread()
        await response.aclose()
        doc = json.loads(body)
        tags = sorted(doc.get("tags") or [])
        if last:
            tags = [t for t in tags if t > last]
        headers = {}
        if n and len(tags) > n:
            tags = tags[:n]
            headers["Link"] = f'<{path}?n={n}&last={tags[-1]}>; rel="next"'
        self.pages += 1
        return httpx.Response(200, json={"name": doc["name"], "tags": tags}, headers=headers)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def pane(qtbot: QtBot, loop: asyncio.AbstractEventLoop) -> Iterator[BrowsePane]:
    """A shown BrowsePane, inside a plain window as the main window's tab holds it."""
    host = QWidget()
    qtbot.addWidget(host)
    host.resize(1200, 700)
    copied: list[str] = []
    widget = BrowsePane(host, copy_text=copied.append, page_size=50)
    widget.copied = copied  # type: ignore[attr-defined]
    widget.resize(1200, 700)
    host.show()
    yield widget
    loop.run_until_complete(widget.aclose())


@pytest.fixture(autouse=True)
def collect_in_main_thread() -> Iterator[None]:
    """Collect garbage here, in the main thread, after each test.

    qasync's `_SimpleTimer.stop()` leaves its Qt timers registered (the `wait_for` timeout of
    every `aio.run`, for one); when a closed loop is left to the cyclic garbage collector, it
    may be destroyed in whatever thread happens to collect (a worker of asyncio.to_thread),
    and Qt warns "Timers cannot be stopped from another thread" or crashes.
    """
    yield
    gc.collect()


class Session:
    """Runs a scenario against the pane, then stops the pane's background work and closes
    the scenario's clients while the loop still runs (pytest-qt processes Qt events after
    the test, when no asyncio loop is running)."""

    def __init__(self, pane: BrowsePane, aio: Any) -> None:
        self.pane = pane
        self.aio = aio
        self.clients: list[RegistryClient] = []

    def client(self, host: str, **options: Any) -> RegistryClient:
        client = RegistryClient(host, **options)
        self.clients.append(client)
        return client

    def run(self, scenario: Coroutine[Any, Any, None], timeout: float = TIMEOUT) -> None:
        async def wrapped() -> None:
            try:
                await scenario
            finally:
                await self.pane.aclose()
                for client in self.clients:
                    await client.aclose()

        self.aio.run(wrapped(), timeout)


@pytest.fixture
def session(pane: BrowsePane, aio: Any) -> Session:
    return Session(pane, aio)


def cell(pane: BrowsePane, tag: str, column: int) -> str:
    row = pane.tag_model.row_of(tag)
    return str(pane.tag_model.data(pane.tag_model.index(row, column)))


def child_labels(model: ManifestDetailModel, parent: QModelIndex) -> dict[str, str]:
    out = {}
    for r in range(model.rowCount(parent)):
        out[model.data(model.index(r, 0, parent))] = model.data(model.index(r, 1, parent))
    return out


def top_level(model: ManifestDetailModel) -> dict[str, str]:
    return child_labels(model, QModelIndex())


def starts_with(model: ManifestDetailModel, prefix: str) -> QModelIndex:
    for r in range(model.rowCount()):
        index = model.index(r, 0)
        if str(model.data(index)).startswith(prefix):
            return index
    raise AssertionError(f"no row starting with {prefix!r}")


def scroll_to_end(pane: BrowsePane) -> None:
    pane.repo_view.scrollToBottom()


def tags_in_sight_read(pane: BrowsePane) -> bool:
    """Every tag row the view shows has its size and date read (or failed)."""
    model = pane.tag_model
    rows = visible_source_rows(pane.tag_view, pane.tag_proxy)
    details = [model.detail(model.tag_at(r) or "") for r in rows]
    return bool(rows) and all(
        d is not None and d.state in (DetailState.DONE, DetailState.FAILED) for d in details
    )


# -- repositories ---------------------------------------------------------------------------


def test_catalog_pages_load_as_the_list_scrolls_and_filter(
    registry_factory: RegistryFactory, pane: BrowsePane, session: Session, aio: Any
) -> None:
    reg = registry_factory()

    async def scenario() -> None:
        await seed_repositories(reg.url, 250)
        counting = CountingTransport()
        client = session.client(reg.host, transport=counting)
        pane.set_registry(client, "catalog test")
        await aio.until(lambda: pane.repo_model.rowCount() == 50, what="first page")
        assert counting.count("GET", "/_catalog") == 1
        assert pane.repo_model.canFetchMore()
        assert pane.title.text() == f"Browsing catalog test ({reg.host})"
        # Nothing more is fetched while nobody scrolls (50 rows fill the list): a check that
        # nothing happens has no event to wait for, so it watches for a while.
        await asyncio.sleep(0.4)
        assert pane.repo_model.rowCount() == 50
        assert counting.count("GET", "/_catalog") == 1
        assert "50 repositories; more load as you scroll" in pane.repo_status.text()

        scroll_to_end(pane)
        await aio.until(lambda: pane.repo_model.rowCount() == 100, what="second page")
        assert counting.count("GET", "/_catalog") == 2

        def every_repository_listed() -> bool:
            scroll_to_end(pane)  # the list asks for the next page when its end is in sight
            return not (pane.repo_model.canFetchMore() or pane.repo_model.loading)

        await aio.until(every_repository_listed, what="every page")
        names = pane.repo_model.names()
        assert len(names) == 250 and names == sorted(names)
        assert counting.count("GET", "/_catalog") <= 6
        assert pane.repo_status.text() == "250 repositories"

        pane.repo_filter.setText("REPO-01")  # case-insensitive
        assert pane.repo_proxy.rowCount() == 10
        assert "10 of 250 repositories match" in pane.repo_status.text()
        pane.repo_filter.clear()
        assert pane.repo_proxy.rowCount() == 250

    session.run(scenario())


def test_filter_reads_further_pages_to_fill_the_list(
    registry_factory: RegistryFactory, pane: BrowsePane, session: Session, aio: Any
) -> None:
    """A filter matching nothing among the pages read makes the list read on, and stops as
    soon as the list is full or the catalog ends."""
    reg = registry_factory()

    async def scenario() -> None:
        await seed_repositories(reg.url, 150)
        client = session.client(reg.host)
        pane.set_registry(client)
        await aio.until(lambda: pane.repo_model.rowCount() == 50, what="first page")
        pane.repo_filter.setText("repo-14")
        await aio.until(lambda: pane.repo_proxy.rowCount() == 10, what="matches")
        shown = [pane.repo_proxy.index(r, 0).data() for r in range(10)]
        assert shown == [f"gui-catalog/repo-{i}" for i in range(140, 150)]

    session.run(scenario())


@pytest.mark.parametrize("status", [404, 401])
def test_registry_without_catalog_offers_a_repository_field(
    pane: BrowsePane, session: Session, aio: Any, qtmodeltester: Any, status: int
) -> None:
    """Docker Hub and GHCR refuse `_catalog`; the real distribution always offers it, so a
    scripted registry answers here."""
    manifest = artifact_manifest(b"x" * 10, "2024-01-01T00:00:00Z")

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        if path == "/v2/_catalog":
            code = "UNAUTHORIZED" if status == 401 else "NOT_FOUND"
            return httpx.Response(status, json={"errors": [{"code": code, "message": "no"}]})
        if path == "/v2/team/model/tags/list":
            return httpx.Response(200, json={"name": "team/model", "tags": ["v1", "v2"]})
        if path.startswith("/v2/team/model/manifests/"):
            headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha(manifest)}
            return httpx.Response(200, content=manifest, headers=headers)
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    async def scenario() -> None:
        qtmodeltester.check(pane.tag_model)
        transport = httpx.MockTransport(handler)
        client = session.client("hub.example.test", transport=transport)
        pane.set_registry(client, "Hub")
        await aio.until(lambda: pane.no_catalog.isVisible(), what="no-catalog sentence")
        assert "does not list its repositories" in pane.no_catalog.text()
        assert not pane.repo_view.isVisible()
        assert pane.repo_name.isVisible() and pane.repo_name.hasFocus()
        pane.repo_name.setText("team/model")
        pane.repo_name.returnPressed.emit()
        await aio.until(lambda: pane.tag_model.rowCount() == 2, what="tags")
        assert pane.repository == "team/model"
        assert pane.tag_model.tags() == ["v1", "v2"]

        pane.repo_name.setText("team/model:v2")
        pane.repo_open.click()
        await aio.until(lambda: pane.detail_model.info is not None, what="details")
        assert pane.selected_tags() == ["v2"]

    session.run(scenario())


# -- tags -----------------------------------------------------------------------------------


def test_tags_page_as_they_scroll_and_sizes_fill_for_visible_rows(
    registry: RegistryProcess, pane: BrowsePane, session: Session, aio: Any
) -> None:
    repo = "gui-browse/paged-tags"

    async def scenario() -> None:
        tags = await seed_tags(registry.url, repo, 300)
        counting = CountingTransport()
        paging = PagingTags(counting)
        client = session.client(registry.host, transport=paging)
        pane.set_registry(client)
        await pane.wait_connected()
        pane.open_repository(repo)
        await aio.until(lambda: pane.tag_model.rowCount() == 50, what="first tag page")
        assert paging.pages == 1 and pane.tag_model.canFetchMore()
        assert "50 tags; more load as you scroll" in pane.tag_status.text()

        # Rows in sight get their size and date; the rest still say so.
        await aio.until(lambda: tags_in_sight_read(pane), what="the sizes of the rows in sight")
        assert cell(pane, "t000", TagColumn.SIZE) == format_size(1000 + 2)
        assert cell(pane, "t001", TagColumn.CREATED) == "2024-05-01 10:00 UTC"
        assert cell(pane, "t002", TagColumn.CREATED) == "2023-01-01 10:00 UTC"
        assert cell(pane, "t049", TagColumn.SIZE) == LOADING_SIZE
        assert cell(pane, "t049", TagColumn.CREATED) == LOADING_DATE
        heads = counting.count("HEAD", "/manifests/")
        assert 0 < heads < 50
        # One inspect per digest, whatever the number of tags on it.
        assert pane.tag_model.inspections == 3
        assert counting.count("GET", "/manifests/") == 3

        pane.tag_view.scrollToBottom()
        await aio.until(lambda: pane.tag_model.rowCount() == 100, what="second page")
        assert paging.pages == 2
        await aio.until(lambda: cell(pane, "t049", TagColumn.SIZE) != LOADING_SIZE,
                        what="rows scrolled into sight")  # fmt: skip
        assert pane.tag_model.inspections == 3

        def every_tag_listed() -> bool:
            pane.tag_view.scrollToBottom()  # the next page is asked for when the end shows
            return not (pane.tag_model.canFetchMore() or pane.tag_model.loading)

        await aio.until(every_tag_listed, what="every page of tags")
        assert pane.tag_model.tags() == tags
        assert counting.count("HEAD", "/manifests/") < 300

        pane.tag_filter.setText("t29")
        assert pane.tag_proxy.rowCount() == 10

    session.run(scenario())


def test_sorting_by_date_reads_every_date_newest_first(
    registry: RegistryProcess, pane: BrowsePane, session: Session, aio: Any
) -> None:
    """distribution 2.8 sends all 300 tags in one page; sorting by date reads every date."""
    repo = "gui-browse/one-page-tags"

    async def scenario() -> None:
        await seed_tags(registry.url, repo, 300)
        counting = CountingTransport()
        client = session.client(registry.host, transport=counting)
        pane.set_registry(client)
        await pane.wait_connected()
        pane.open_repository(repo)
        await aio.until(lambda: pane.tag_model.rowCount() == 300, what="all tags")
        await aio.until(lambda: tags_in_sight_read(pane), what="the sizes of the rows in sight")
        assert counting.count("HEAD", "/manifests/") < 100

        pane.tag_view.sortByColumn(TagColumn.CREATED, Qt.SortOrder.DescendingOrder)
        await aio.until(lambda: pane.tag_model.detail_counts() == (300, 300), what="dates")
        await aio.until(lambda: not pane.tag_model.loading_all, what="sorted")
        proxy = pane.tag_proxy
        first = proxy.index(0, TagColumn.CREATED).data()
        last = proxy.index(299, TagColumn.CREATED).data()
        assert first == "2024-05-01 10:00 UTC"
        assert last == "2023-01-01 10:00 UTC"
        assert pane.tag_model.inspections == 3

        pane.tag_view.sortByColumn(TagColumn.SIZE, Qt.SortOrder.AscendingOrder)
        assert proxy.index(0, TagColumn.SIZE).data() == format_size(1002)

    session.run(scenario())


# -- details, copy, download ----------------------------------------------------------------


def test_artifact_details_list_files_with_sizes_copy_and_download(
    registry: RegistryProcess,
    pane: BrowsePane,
    session: Session,
    aio: Any,
    tmp_path: Path,
    qtmodeltester: Any,
) -> None:
    a = tmp_path / "weights.bin"
    a.write_bytes(b"w" * 3000)
    b = tmp_path / "README.md"
    b.write_bytes(b"# model\n")
    repo = "gui-browse/artifact"

    async def scenario() -> None:
        digest, _ = await push_paths(registry.host, f"{repo}:v1", [a, b])
        qtmodeltester.check(pane.detail_model)
        client = session.client(registry.host)
        pane.set_registry(client)
        await aio.until(lambda: pane.repo_model.row_of(repo) >= 0 or
                        not pane.repo_model.canFetchMore(), what="catalog")  # fmt: skip
        pane.show_reference(f"{registry.host}/{repo}:v1")
        await aio.until(lambda: pane.detail_model.info is not None, what="details")
        model = pane.detail_model
        top = top_level(model)
        assert top["Kind"] == "OCI artifact"
        assert top["Digest"] == digest
        assert top["Size"].startswith(format_size(3000 + 8))
        assert top["Pull command"] == f"oras pull --plain-http {registry.host}/{repo}:v1"
        files = child_labels(model, starts_with(model, "Files (2)"))
        assert files == {"weights.bin": size_text(3000), "README.md": size_text(8)}
        assert pane.repo_view.currentIndex().data() == repo
        assert cell(pane, "v1", TagColumn.DIGEST) == f"sha256:{digest[7:19]}"

        pane.qactions["copy_pull"].trigger()
        assert pane.copied == [f"oras pull --plain-http {registry.host}/{repo}:v1"]  # type: ignore[attr-defined]

        folder = tmp_path / "out"
        asked: list[str] = []

        async def choose(caption: str) -> Path:
            asked.append(caption)
            return folder

        pane.choose_folder = choose
        # The pane asks the window to queue it (tests/gui/test_window.py follows it there),
        # pinned by digest so a tag moved during a pause can't mix two artifacts.
        requested: list[tuple[str, str, str]] = []
        pane.downloadRequested.connect(lambda r, f, p: requested.append((r, f, p)))
        pane.qactions["download"].trigger()
        await aio.until(lambda: requested, what="download request")
        assert asked == [f"Download {registry.host}/{repo}:v1 to"]
        assert requested == [(f"{registry.host}/{repo}:v1@{digest}", str(folder), "")]
        assert pane.last_message == (
            f"Downloading {registry.host}/{repo}:v1 to {folder}: see Transfers"
        )

    session.run(scenario())


def test_multi_arch_details_list_platforms_with_sizes(
    registry: RegistryProcess,
    pane: BrowsePane,
    session: Session,
    aio: Any,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    layout = write_oci_layout(tmp_path / "multi", multi_arch=True, tag="v1")
    repo = "gui-browse/multi"
    target = parse_reference(f"{registry.host}/{repo}:v1")

    async def scenario() -> None:
        transfer = await asyncio.to_thread(plan_image_push, target, layout.path)
        async with RegistryClient(target.api_host) as pusher:
            assert await TransferRun(transfer, pusher).run() == layout.top_digest
        client = session.client(registry.host)
        pane.set_registry(client)
        pane.show_reference(str(target))
        await aio.until(lambda: pane.detail_model.info is not None, what="details")
        model = pane.detail_model
        top = top_level(model)
        assert top["Kind"] == "OCI image index (multi-platform)"
        assert top["Pull command"] == f"docker pull {target}"
        sizes = {
            image.spec.platform_string: len(image.config) + sum(map(len, image.layers))
            for image in layout.images
        }
        assert len(sizes) >= 2
        platforms = child_labels(model, starts_with(model, "Platforms ("))
        assert platforms == {p: size_text(s) for p, s in sizes.items()}
        assert top["Size (all platforms)"] == size_text(sum(sizes.values()))
        assert top["Created"] != "—"

        # An index needs a platform to download: the details say which to pick.
        folder = tmp_path / "image-out"

        async def choose(caption: str) -> Path:
            return folder

        pane.choose_folder = choose
        requested: list[tuple[str, str, str]] = []
        pane.downloadRequested.connect(lambda r, f, p: requested.append((r, f, p)))
        pane.qactions["download"].trigger()
        await aio.until(lambda: "select a platform" in pane.last_message, what="hint")
        assert requested == []
        platform_row = starts_with(model, "Platforms (")
        arm = next(
            model.index(r, 0, platform_row) for r in range(model.rowCount(platform_row))
            if "arm" in model.index(r, 0, platform_row).data()
        )  # fmt: skip
        pane.detail_view.setCurrentIndex(arm)
        pane.qactions["download"].trigger()
        await aio.until(lambda: requested, what="download request")
        [(reference, to, platform)] = requested
        assert reference == f"{target}@{layout.top_digest}" and to == str(folder)
        assert "arm" in platform and platform == arm.data()

    session.run(scenario())


# -- deleting -------------------------------------------------------------------------------


async def wait_box(pane: BrowsePane, aio: Any) -> ConfirmDialog:
    await aio.until(lambda: pane.confirm_box is not None and pane.confirm_box.isVisible(),
                    what="confirmation")  # fmt: skip
    box = pane.confirm_box
    assert box is not None
    assert box.cancel_button.isDefault()  # Enter does not delete
    return box


def test_delete_warns_about_tags_sharing_the_digest(
    registry: RegistryProcess, pane: BrowsePane, session: Session, aio: Any
) -> None:
    repo = "gui-browse/delete"

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=registry.url, timeout=30) as c:
            await put_blob(c, repo, EMPTY)
            for layer, _ in VARIANTS[:2]:
                await put_blob(c, repo, layer)
            shared = artifact_manifest(VARIANTS[0][0], VARIANTS[0][1])
            other = artifact_manifest(VARIANTS[1][0], VARIANTS[1][1])
            for tag in ("a", "b", "latest"):
                await put_manifest(c, repo, tag, shared)
            await put_manifest(c, repo, "c", other)
        client = session.client(registry.host)
        pane.set_registry(client)
        pane.show_reference(f"{registry.host}/{repo}:a")
        await aio.until(lambda: pane.detail_model.info is not None, what="details")
        assert pane.qactions["delete"].text() == "Delete a…"

        # Cancelling deletes nothing.
        pane.qactions["delete"].trigger()
        box = await wait_box(pane, aio)
        box.cancel_button.click()
        await aio.until(lambda: pane.last_message == "Nothing was deleted", what="cancel")
        assert await client.head_manifest(repo, "a")

        pane.qactions["delete"].trigger()
        box = await wait_box(pane, aio)
        assert box.text() == f"Delete {repo}:a?"
        assert "2 other tags point at the same manifest" in box.informativeText()
        assert "b, latest" in box.informativeText()
        box.confirm_button.click()
        await aio.until(lambda: pane.last_message.startswith("Deleted"), what="deleted")
        assert pane.last_message == f"Deleted a, b, latest from {repo}"
        assert pane.tag_model.tags() == ["c"]
        assert await client.head_manifest(repo, "b") is None
        assert await client.head_manifest(repo, "c")

    session.run(scenario())


def test_delete_refused_by_the_registry_is_said_as_a_sentence(
    registry_factory: RegistryFactory, pane: BrowsePane, session: Session, aio: Any, tmp_path: Path
) -> None:
    reg = registry_factory(extra_config={"storage": {"delete": {"enabled": False}}})
    file = tmp_path / "f.bin"
    file.write_bytes(b"keep me")
    repo = "gui-browse/kept"

    async def scenario() -> None:
        await push_paths(reg.host, f"{repo}:v1", [file])
        client = session.client(reg.host)
        pane.set_registry(client)
        pane.show_reference(f"{reg.host}/{repo}:v1")
        await aio.until(lambda: pane.detail_model.info is not None, what="details")
        pane.qactions["delete"].trigger()
        box = await wait_box(pane, aio)
        assert "other tag" not in box.informativeText()
        box.confirm_button.click()
        await aio.until(lambda: "refused" in pane.last_message, what="refusal")
        assert "deleting is turned off on this registry" in pane.last_message
        assert "storage.delete.enabled" in pane.last_message
        assert pane.message.isVisible()
        assert pane.tag_model.tags() == ["v1"]
        action = pane.qactions["delete"]
        assert not action.isEnabled() and "turned off" in action.toolTip()

    session.run(scenario())


# -- registry from settings, with credentials ----------------------------------------------


def test_settings_entry_uses_the_credentials_cache(
    auth_registry: RegistryProcess, pane: BrowsePane, session: Session, aio: Any, tmp_path: Path
) -> None:
    """A settings entry: the pane opens its own client with what the cache finds (here a
    docker config.json login), and closes it when another registry is chosen."""
    home = Path.home()
    (home / ".docker").mkdir(exist_ok=True)
    auth = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    (home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": auth}}})
    )
    file = tmp_path / "f.bin"
    file.write_bytes(b"private")

    async def scenario() -> None:
        from hoist.core.registry.auth import Credentials

        await push_paths(auth_registry.host, "gui-browse/private:v1", [file],
                         credentials=Credentials(AUTH_USER, AUTH_PASSWORD))  # fmt: skip
        pane.credentials = CredentialCache()
        entry = RegistrySettings("Private", auth_registry.host, username=AUTH_USER)
        pane.set_registry(entry)
        await aio.until(lambda: pane.repo_model.row_of("gui-browse/private") >= 0,
                        what="catalog with credentials")  # fmt: skip
        assert pane.title.text() == f"Browsing Private ({auth_registry.host})"
        client = pane.client
        assert client is not None and client.credentials is not None
        pane.set_registry(entry)  # the same entry again keeps the connection
        await pane.wait_connected()
        assert pane.client is client
        pane.set_registry(None)
        await pane.wait_connected()
        assert pane.client is None and client._client is None  # closed
        assert pane.title.text() == "Choose a registry to browse what it holds."

    session.run(scenario())


# -- the models under Qt's model tester -------------------------------------------------------


def test_paged_models_pass_the_model_tester(
    registry: RegistryProcess, aio: Any, qtmodeltester: Any, qapp: Any
) -> None:
    """Qt's QAbstractItemModelTester watches every signal; it also calls fetchMore after each
    change, so here it pages through the whole catalog and tag list itself."""
    repo = "gui-browse/tester-tags"

    owner = QObject()  # deleted on the loop at the end (see the `pane` fixture)

    async def scenario() -> None:
        await seed_tags(registry.url, repo, 130)
        repos = RepositoryModel(owner, page_size=50)
        repo_proxy = NameFilterProxy(owner)
        repo_proxy.setSourceModel(repos)
        tags = TagModel(owner, page_size=50, refresh_ms=10)
        tag_proxy = TagSortProxy(owner)
        tag_proxy.setSourceModel(tags)
        for model in (repos, repo_proxy, tags, tag_proxy):
            qtmodeltester.check(model)
        async with RegistryClient(
            registry.host, transport=PagingTags(httpx.AsyncHTTPTransport())
        ) as client:
            repos.start(client)
            await aio.until(lambda: repos.complete and repos.row_of(repo) >= 0, what="catalog")
            repo_proxy.set_filter_text("TESTER")
            assert repo_proxy.rowCount() == 1
            tags.start(client, repo)
            await aio.until(lambda: tags.complete and tags.rowCount() == 130, what="tags")
            tag_proxy.sort(TagColumn.SIZE, Qt.SortOrder.DescendingOrder)
            tags.set_visible_rows(range(10))
            await aio.until(lambda: tags.detail_counts()[0] == 10, what="details")
            # The last sizes reach the view on the model's next flush (refresh_ms), so the
            # proxy's order is waited for, not read the moment the tenth size is known.
            largest_first = [format_size(20002)] * 3 + [format_size(5002)] * 3
            await aio.until(
                lambda: (
                    [tag_proxy.index(r, TagColumn.SIZE).data() for r in range(6)] == largest_first
                ),
                what="the visible tags sorted largest first",
            )
            tags.remove_tags(["t000", "t001", "t002", "t005", "t129"])
            assert tags.rowCount() == 125 and tags.row_of("t003") == 0
            tags.start(client, "")
            repos.start(None)
            await aio.until(lambda: tags.complete and repos.complete, what="the empty lists")
            tags.stop()
            repos.stop()
            await aio.until(
                lambda: not (tags.running_tasks() or repos.running_tasks()), what="tasks ended"
            )
        owner.deleteLater()
        await asyncio.sleep(0)  # one loop turn: the deferred delete runs

    aio.run(scenario(), timeout=TIMEOUT)


# -- the data behind the widgets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "enabled", "delete_label"),
    [
        (PaneState(), {"download": False, "refresh": False, "delete": False},
         "Delete tag…"),
        (PaneState(connected=True, repository="r", selected_tags=("v1",), details_shown=True,
                   pull_command="docker pull x"),
         {"refresh": True, "copy_pull": True, "download": True, "delete": True}, "Delete v1…"),
        (PaneState(connected=True, repository="r", selected_tags=("a", "b")),
         {"copy_pull": False, "download": False, "delete": True}, "Delete 2 tags…"),
        (PaneState(connected=True, selected_tags=("a",), details_shown=True,
                   delete_refused="refused"),
         {"download": True, "delete": False}, "Delete a…"),
        (PaneState(connected=True, selected_tags=("a",), deleting=True),
         {"delete": False}, "Delete a…"),
    ],
)  # fmt: skip
def test_browse_actions(state: PaneState, enabled: dict[str, bool], delete_label: str) -> None:
    actions = browse_actions(state)
    assert list(actions) == ["refresh", "filter", "open_repository", "copy_pull", "download",
                             "delete"]  # fmt: skip
    for key, value in enabled.items():
        assert actions[key].enabled is value, key
        if not value and key in ("copy_pull", "download", "delete", "refresh"):
            assert actions[key].why_not
    assert actions["delete"].label == delete_label
    assert len({a.shortcut for a in actions.values()}) == len(actions)


@pytest.mark.parametrize(
    ("chosen", "digest_of", "sharing", "question", "phrases", "removed"),
    [
        (["v1"], {"v1": "sha256:" + "1" * 64}, {"sha256:" + "1" * 64: ["v1"]},
         "Delete r:v1?", ["sha256:111111111111 is deleted", "can't be undone"], ["v1"]),
        (["v1"], {"v1": "sha256:" + "1" * 64}, {"sha256:" + "1" * 64: ["v1", "latest"]},
         "Delete r:v1?", ["1 other tag points at the same manifest", ": latest."],
         ["v1", "latest"]),
        (["a", "b"], {"a": "sha256:" + "1" * 64, "b": "sha256:" + "2" * 64},
         {"sha256:" + "1" * 64: ["a", "x"], "sha256:" + "2" * 64: ["b", "y", "z"]},
         "Delete 2 tags from r?", ["2 manifests are deleted", "3 other tags point at these",
                                   "x, y, z"], ["a", "b", "x", "y", "z"]),
        (["a", "b"], {"a": "sha256:" + "1" * 64, "b": "sha256:" + "1" * 64},
         {"sha256:" + "1" * 64: ["a", "b"]}, "Delete 2 tags from r?",
         ["sha256:111111111111 is deleted"], ["a", "b"]),
    ],
)  # fmt: skip
def test_delete_plan_and_message(
    chosen: list[str],
    digest_of: dict[str, str],
    sharing: dict[str, list[str]],
    question: str,
    phrases: list[str],
    removed: list[str],
) -> None:
    plan = delete_plan("r", chosen, digest_of, sharing)
    assert plan.removed_tags == removed
    text, detail = delete_message(plan)
    assert text == question
    for phrase in phrases:
        assert phrase in detail
    if plan.also_removed:
        assert "other tag" in detail
    else:
        assert "other tag" not in detail
    assert delete_outcome(plan, list(plan.digests)) == f"Deleted {', '.join(removed)} from r"
    assert delete_outcome(plan, []) == "Nothing was deleted"


def test_delete_plan_keeps_one_entry_per_digest() -> None:
    digest = "sha256:" + "a" * 64
    plan = delete_plan("r", ["x", "y"], {"x": digest, "y": digest}, {digest: ["y", "x", "z"]})
    assert plan == DeletePlan("r", ("x", "y"), {digest: ("x", "y", "z")})


def info(kind: ManifestKind, **extra: Any) -> ManifestInfo:
    base: dict[str, Any] = dict(
        reference="reg.test/r:v1", repository="r", digest="sha256:" + "d" * 64,
        media_type=OCI_MANIFEST, kind=kind, manifest_size=500,
    )  # fmt: skip
    base.update(extra)
    return ManifestInfo(**base)


def blob(size: int, title: str | None = None, n: int = 1) -> BlobInfo:
    annotations = {"org.opencontainers.image.title": title} if title else {}
    return BlobInfo(f"sha256:{n:064d}", size, "application/octet-stream", annotations)


def platform(name: str, size: int | None, *, attestation: bool = False) -> PlatformInfo:
    annotations = {"vnd.docker.reference.type": "attestation-manifest"} if attestation else {}
    return PlatformInfo(f"sha256:{abs(hash(name)):064d}"[:71], OCI_MANIFEST, 400,
                        "" if attestation else name, annotations=annotations,
                        content_size=size, created="2024-02-03T04:05:06Z")  # fmt: skip


def flatten(rows: list[DetailRow], depth: int = 0) -> list[tuple[int, str, str]]:
    out = []
    for row in rows:
        out.append((depth, row.label, row.value))
        out.extend(flatten(list(row.children), depth + 1))
    return out


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (info(ManifestKind.ARTIFACT, artifact_type="application/x.model", total_size=3002,
              layers=[blob(3000, "model.bin"), blob(2, None, 2)],
              annotations={"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
              created="2024-01-02T03:04:05Z", pull_command="oras pull reg.test/r:v1"),
         [(0, "Kind", "OCI artifact"), (0, "Artifact type", "application/x.model"),
          (0, "Size", "2.93 KiB (3,002 bytes)"), (0, "Created", "2024-01-02 03:04 UTC"),
          (0, "Pull command", "oras pull reg.test/r:v1"), (0, "Files (2)", "2.93 KiB"),
          (1, "model.bin", "2.93 KiB (3,000 bytes)"), (1, "layer 2 (untitled)", "2 B"),
          (0, "Annotations (1)", ""),
          (1, "org.opencontainers.image.created", "2024-01-02T03:04:05Z")]),
        (info(ManifestKind.OCI_INDEX, total_size=3 * 1024 * 1024,
              platforms=[platform("linux/amd64", 2 * 1024 * 1024),
                         platform("linux/arm64/v8", 1024 * 1024),
                         platform("att", 900, attestation=True),
                         platform("linux/s390x", None)],
              pull_command="docker pull reg.test/r:v1",
              referrers=[ReferrerInfo("sha256:" + "e" * 64, OCI_MANIFEST, 700,
                                      "application/vnd.dev.sigstore.bundle")],
              warnings=["the registry does not have the child manifest sha256:x"]),
         [(0, "Kind", "OCI image index (multi-platform)"),
          (0, "Size (all platforms)", "3 MiB (3,145,728 bytes)"), (0, "Created", "—"),
          (0, "Platforms (3)", "each platform's config and layers"),
          (1, "linux/amd64", "2 MiB (2,097,152 bytes)"),
          (1, "linux/arm64/v8", "1 MiB (1,048,576 bytes)"),
          (1, "linux/s390x", "size unknown (its manifest could not be read)"),
          (0, "Referrers (1)", "signatures, SBOMs and other manifests about this one"),
          (1, "application/vnd.dev.sigstore.bundle", "sha256:eeeeeeeeeeee · 700 B"),
          (0, "Could not read (1)", "")]),
        (info(ManifestKind.DOCKER_IMAGE, total_size=1500, config=blob(500, None, 9),
              layers=[blob(1000, None, 3)], created="2021-06-07T08:09:10.123456789Z"),
         [(0, "Kind", "Docker image"), (0, "Created", "2021-06-07 08:09 UTC"),
          (0, "Layers (1)", "1000 B"), (1, "config", "500 B"), (1, "layer 1", "1000 B")]),
    ],
)  # fmt: skip
def test_manifest_details(manifest: ManifestInfo, expected: list[tuple[int, str, str]]) -> None:
    rows = flatten(manifest_details(manifest))
    for entry in expected:
        assert entry in rows, entry
    assert (0, "Digest", manifest.digest) in rows
    labels = [label for depth, label, _ in rows if depth == 1]
    if manifest.kind.is_index:
        assert any(label.startswith("attestation (") for label in labels)


def test_manifest_detail_model_is_a_tree(qtmodeltester: Any, qtbot: QtBot) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)  # deleted by qtbot, in the main thread
    model = ManifestDetailModel(owner)
    qtmodeltester.check(model)
    model.set_info(info(ManifestKind.OCI_INDEX, total_size=10,
                        platforms=[platform("linux/amd64", 10)]))  # fmt: skip
    platforms = model.find("Platforms (1)")
    assert platforms.isValid() and model.rowCount(platforms) == 1
    amd = model.index(0, 0, platforms)
    assert amd.data() == "linux/amd64"
    assert model.parent(amd) == platforms
    assert model.rowCount(amd) == 3  # digest, media type, created
    model.set_info(None)
    assert model.rowCount() == 0


@pytest.mark.parametrize(
    ("key", "platforms", "expected"),
    [
        ("", ["linux/amd64"], ("linux/amd64", "")),
        ("platform:linux/arm64", ["linux/amd64", "linux/arm64"], ("linux/arm64", "")),
        ("", ["linux/amd64", "linux/arm64"], (None, "select a platform")),
        ("file:1", ["linux/amd64", "linux/arm64"], (None, "select a platform")),
    ],
)
def test_download_platform(key: str, platforms: list[str], expected: tuple[Any, str]) -> None:
    index = info(ManifestKind.OCI_INDEX, platforms=[platform(p, 1) for p in platforms])
    chosen, problem = download_platform(index, key)
    assert chosen == expected[0]
    assert expected[1] in problem and bool(problem) == bool(expected[1])
    assert download_platform(info(ManifestKind.ARTIFACT), key) == (None, "")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02 03:04 UTC"),
        ("2024-01-02T03:04:05.999999999Z", "2024-01-02 03:04 UTC"),
        ("2024-01-02T05:04:05+02:00", "2024-01-02 03:04 UTC"),
        ("yesterday", "yesterday"),
        (None, "—"),
        ("", "—"),
    ],
)
def test_format_created(text: str | None, shown: str) -> None:
    assert format_created(text) == shown


def test_details_and_delete_follow_the_same_selected_tag_and_counts_read_as_english(
    registry: RegistryProcess, pane: BrowsePane, session: Session, aio: Any
) -> None:
    """Ctrl+click taking the current tag out of the selection leaves details and Delete on
    the tag still selected; "1 tag", not "1 tags"."""
    repo = "gui-browse/follow"

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=registry.url, timeout=30) as c:
            await put_blob(c, repo, EMPTY)
            for layer, _ in VARIANTS[:2]:
                await put_blob(c, repo, layer)
            await put_manifest(c, repo, "a", artifact_manifest(*VARIANTS[0]))
            await put_blob(c, f"{repo}-one", EMPTY)
            await put_blob(c, f"{repo}-one", VARIANTS[0][0])
            await put_manifest(c, f"{repo}-one", "a", artifact_manifest(*VARIANTS[0]))
            await put_manifest(c, repo, "b", artifact_manifest(*VARIANTS[1]))
        pane.set_registry(session.client(registry.host))
        await aio.until(lambda: pane.client is not None, what="connected")
        pane.open_repository(f"{repo}-one")
        await aio.until(lambda: pane.tag_status.text() == "1 tag", what="1 tag")
        pane.open_repository(repo)
        await aio.until(lambda: pane.tag_model.complete, what="tags")
        await aio.until(lambda: pane.tag_status.text() == "2 tags", what="2 tags")
        view, proxy = pane.tag_view, pane.tag_proxy
        selection = view.selectionModel()
        flags = selection.SelectionFlag
        row_a = proxy.index(0, 0)
        row_b = proxy.index(1, 0)
        selection.setCurrentIndex(row_a, flags.ClearAndSelect | flags.Rows)
        await aio.until(lambda: pane.detail_title.text().endswith(f"{repo}:a"), what="a")
        selection.setCurrentIndex(row_b, flags.Select | flags.Rows)  # Ctrl+click b
        await aio.until(lambda: pane.detail_title.text().endswith(f"{repo}:b"), what="b")
        assert pane.qactions["delete"].text() == "Delete 2 tags…"
        selection.setCurrentIndex(row_b, flags.Deselect | flags.Rows)  # Ctrl+click b again
        await aio.until(lambda: pane.detail_title.text().endswith(f"{repo}:a"), what="a again")
        assert pane.qactions["delete"].text() == "Delete a…"
        assert pane.selected_tags() == ["a"]

    session.run(scenario())


def test_ctrl_f_focuses_the_repository_filter_while_browse_shows(
    registry: RegistryProcess, pane: BrowsePane, session: Session, aio: Any, qtbot: QtBot
) -> None:
    async def scenario() -> None:
        pane.set_registry(session.client(registry.host))
        await aio.until(lambda: pane.client is not None, what="connected")
        host = pane.window()
        host.windowHandle().requestActivate()
        await aio.until(host.isActiveWindow, what="the window active")
        pane.refresh_actions()
        outside = QLineEdit(host)  # focus elsewhere in the window, as on the tab bar
        outside.show()
        outside.setFocus()
        await aio.until(outside.hasFocus, what="focus outside")
        QTest.keyClick(outside, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
        await aio.until(pane.repo_filter.hasFocus, 5, "the filter focused")

    session.run(scenario())
