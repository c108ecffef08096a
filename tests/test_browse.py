"""Browsing a registry: catalog and tag pages, inspecting manifests, deleting.

Against the real distribution 2.8 registry wherever it can show the behaviour; scripted
`httpx.MockTransport` registries only for answers it can't be made to give (a Link to another
host, a registry ignoring `n` without a Link, a 10 MB error page, a manifest that is not JSON,
the referrers API, Docker Hub's and GHCR's refusals to list).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from pushing import push_paths
from support.registry import RegistryFactory, RegistryProcess
from support.tokenserver import TokenServerFactory

from hoist.core.errors import CatalogUnavailable, DeleteRefused, NotFound, RegistryError
from hoist.core.oci.manifest import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from hoist.core.registry.auth import Credentials
from hoist.core.registry.browse import ManifestKind, classify, inspect, referrers
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.deletion import delete, resolve_digest, tags_sharing_digest
from hoist.core.registry.listing import catalog_pages, tag_pages

EMPTY = b"{}"
CT_OCI = {"Content-Type": OCI_MANIFEST}
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
REPOSITORIES = 1200
TAGS = 1500
TAGGED = "tagged/many"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


def artifact_manifest(config: bytes = EMPTY, **extra: Any) -> bytes:
    return canonical({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.empty.v1+json", config), "layers": [], **extra,
    })  # fmt: skip


# -- raw HTTP helpers (seeding a registry fast, without the engine) ---------------------------


async def put_blob(c: httpx.AsyncClient, repo: str, data: bytes) -> str:
    digest = sha(data)
    r = await c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    url = httpx.URL(str(c.base_url)).join(r.headers["Location"]).copy_add_param("digest", digest)
    r = await c.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


async def put_manifest(
    c: httpx.AsyncClient, repo: str, ref: str, data: bytes, media_type: str = OCI_MANIFEST
) -> str:
    r = await c.put(
        f"/v2/{repo}/manifests/{ref}", content=data, headers={"Content-Type": media_type}
    )
    assert r.status_code == 201, r.text
    return sha(data)


def seed(url: str) -> None:
    """1,200 repositories (one tiny manifest each, its config mounted from the first) and a
    repository with 1,500 tags of one manifest.

    Sync httpx in 16 threads: about 1.4 ms a request here, against 3.5 ms of CPU for each
    request through httpx's async client, which was the bottleneck (not the registry).
    """
    first = repo_name(0)
    manifest = artifact_manifest()
    mount = {"mount": sha(EMPTY), "from": first}
    ct = {"Content-Type": OCI_MANIFEST}
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post(f"/v2/{first}/blobs/uploads/")
        location = httpx.URL(url).join(r.headers["Location"]).copy_add_param("digest", sha(EMPTY))
        assert c.put(location, content=EMPTY).status_code == 201
        assert c.put(f"/v2/{first}/manifests/v1", content=manifest, headers=ct).status_code == 201

        def repo(name: str) -> None:
            r = c.post(f"/v2/{name}/blobs/uploads/", params=mount)
            assert r.status_code == 201, r.text
            r = c.put(f"/v2/{name}/manifests/v1", content=manifest, headers=ct)
            assert r.status_code == 201, r.text

        def tag(t: int) -> None:
            r = c.put(f"/v2/{TAGGED}/manifests/t{t:04d}", content=manifest, headers=ct)
            assert r.status_code == 201, r.text

        assert c.post(f"/v2/{TAGGED}/blobs/uploads/", params=mount).status_code == 201
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(repo, [repo_name(i) for i in range(1, REPOSITORIES - 1)]))
            list(pool.map(tag, range(TAGS)))


def repo_name(i: int) -> str:
    return f"many/r{i:04d}"


def expected_repositories() -> list[str]:
    return sorted([repo_name(i) for i in range(REPOSITORIES - 1)] + [TAGGED])


@pytest.fixture(scope="module")
def big_registry() -> Iterator[RegistryProcess]:
    """A private registry holding 1,200 repositories, one of them with 1,500 tags."""
    reg = RegistryProcess()
    try:
        reg.start()
        seed(reg.url)
        yield reg
    finally:
        reg.close()


class Recorder(httpx.AsyncBaseTransport):
    """The real network, with every request remembered (to see what was fetched when)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def paths(self, fragment: str) -> list[str]:
        return [str(r.url) for r in self.requests if fragment in r.url.path]


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    yield rec
    await rec.aclose()


def real_client(
    reg: RegistryProcess, transport: httpx.AsyncBaseTransport | None = None, **kw: Any
) -> RegistryClient:
    return RegistryClient(reg.host, plain_http=True, transport=transport, **kw)


# -- catalog and tags against distribution 2.8 -----------------------------------------------


async def test_catalog_pages_arrive_one_at_a_time(
    big_registry: RegistryProcess, recorder: Recorder
) -> None:
    async with real_client(big_registry, recorder) as client:
        pages = catalog_pages(client, page_size=100)
        first = await anext(pages)
        # The first page is in hand while the registry has been asked for nothing more.
        assert len(first.items) == 100
        assert first.more
        assert len(recorder.paths("/v2/_catalog")) == 1
        # distribution 2.8: a relative Link, `last` = the last name of this page, kept as given.
        assert first.items[-1] == "many/r0099"
        assert first.next_url == f"http://{big_registry.host}/v2/_catalog?last=many%2Fr0099&n=100"
        seen = list(first.items)
        async for page in pages:
            assert len(page.items) <= 100
            seen.extend(page.items)
            assert page.more == (page.next_url is not None)
        assert seen == expected_repositories()
        requests = recorder.paths("/v2/_catalog")
        assert len(requests) == 12  # 1,200 names, 100 a page: no extra empty page
        assert page.more is False


async def test_catalog_page_size_above_the_registry_limit_falls_back(
    big_registry: RegistryProcess, recorder: Recorder
) -> None:
    # distribution refuses n > catalog.maxentries (1000) with 400 PAGINATION_NUMBER_INVALID;
    # without `n` it pages by 100.
    async with real_client(big_registry, recorder) as client:
        sizes = [len(p.items) async for p in catalog_pages(client, page_size=5000)]
    assert sizes == [100] * 12
    assert "n=5000" in recorder.paths("/v2/_catalog")[0]
    assert "n=" not in recorder.paths("/v2/_catalog")[1]


async def test_tag_pages_list_1500_tags(big_registry: RegistryProcess, recorder: Recorder) -> None:
    async with real_client(big_registry, recorder) as client:
        pages = [p async for p in tag_pages(client, TAGGED, page_size=100)]
    # distribution 2.8 ignores `n` on tags/list: every tag in one page, no Link.
    tags = [t for p in pages for t in p.items]
    assert sorted(tags) == [f"t{t:04d}" for t in range(TAGS)]
    assert len(tags) == TAGS
    assert pages[-1].more is False
    assert all(p.repository == TAGGED for p in pages)


async def test_tags_of_an_unknown_repository(registry: RegistryProcess) -> None:
    async with real_client(registry) as client:
        with pytest.raises(NotFound, match="NAME_UNKNOWN"):
            [p async for p in tag_pages(client, "no/such/repo")]


async def test_catalog_refused_by_a_token_registry(
    registry_factory: RegistryFactory, token_server_factory: TokenServerFactory
) -> None:
    # As Docker Hub: the token service grants nothing for `registry:catalog:*`.
    server = token_server_factory(policy=lambda user, kind, name, wanted: (
        [] if kind == "registry" else wanted
    ))  # fmt: skip
    reg = registry_factory(token_auth=server)
    async with real_client(reg, credentials=Credentials("hoist", "s3cret-pass")) as client:
        with pytest.raises(CatalogUnavailable) as info:
            [p async for p in catalog_pages(client)]
    sentence = info.value.sentence()
    assert "does not list its repositories" in sentence
    assert "type a repository name instead" in sentence
    assert info.value.status == 401


async def test_catalog_anonymous_on_a_basic_auth_registry(auth_registry: RegistryProcess) -> None:
    async with real_client(auth_registry) as client:
        with pytest.raises(CatalogUnavailable) as info:
            await anext(catalog_pages(client))
    assert "log in" in info.value.sentence()


# -- catalog and tags: what distribution can't be made to send -------------------------------


def mock_client(handler: Callable[[httpx.Request], Any], **kw: Any) -> RegistryClient:
    return RegistryClient(
        "registry.test", plain_http=True, transport=httpx.MockTransport(handler), **kw
    )


async def test_link_to_another_host_is_refused() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(
            200,
            json={"repositories": ["a", "b"]},
            headers={"Link": '<http://evil.test/v2/_catalog?last=b&n=2>; rel="next"'},
        )

    async with mock_client(handler) as client:
        with pytest.raises(RegistryError, match="another host"):
            [p async for p in catalog_pages(client, page_size=2)]
    assert all("evil.test" not in url for url in asked)


async def test_registry_ignoring_n_without_a_link() -> None:
    names = [f"repo{i}" for i in range(250)]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json={"repositories": names})

    async with mock_client(handler) as client:
        pages = [p async for p in catalog_pages(client, page_size=100)]
    assert [p.items for p in pages] == [tuple(names)]
    assert pages[0].more is False and pages[0].next_url is None
    assert asked == ["http://registry.test/v2/_catalog?n=100"]


async def test_opaque_link_is_followed_as_given() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "Zm9v==":
            return httpx.Response(200, json={"name": "x", "tags": ["c"]})
        # ECR-style opaque cursor, relative to the request, with characters that need care.
        return httpx.Response(
            200,
            json={"name": "x", "tags": ["a", "b"]},
            headers={"Link": '<tags/list?cursor=Zm9v%3D%3D&n=2>; rel="next"'},
        )

    async with mock_client(handler) as client:
        pages = [p async for p in tag_pages(client, "x", page_size=2)]
    assert [p.items for p in pages] == [("a", "b"), ("c",)]
    assert pages[0].next_url == "http://registry.test/v2/x/tags/tags/list?cursor=Zm9v%3D%3D&n=2"


async def test_repeating_link_is_an_error_not_a_loop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"repositories": ["a"]}, headers={"Link": '</v2/_catalog?n=1>; rel="next"'}
        )

    async with mock_client(handler) as client:
        with pytest.raises(RegistryError, match="already read"):
            [p async for p in catalog_pages(client, page_size=1)]


class HugeBody(httpx.AsyncByteStream):
    """A body of `total` bytes that counts how much of it was consumed."""

    def __init__(self, total: int, chunk: bytes = b"<p>oops</p>" * 6000) -> None:
        self.total = total
        self.chunk = chunk
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.consumed < self.total:
            self.consumed += len(self.chunk)
            yield self.chunk

    async def aclose(self) -> None:
        pass


async def test_ten_megabyte_error_page_is_read_bounded() -> None:
    body = HugeBody(10 * 1024 * 1024)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, headers={"Content-Type": "text/html"}, stream=body)

    async with mock_client(handler) as client:
        with pytest.raises(RegistryError) as info:
            await anext(catalog_pages(client))
    assert info.value.status == 500
    assert body.consumed < 256 * 1024
    assert len(info.value.sentence()) < 500


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b"404 page not found"),  # GHCR and others: no such endpoint
        (401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'),
        (403, b'{"errors":[{"code":"DENIED","message":"requested access is denied"}]}'),
    ],
)
async def test_catalog_refusals_say_to_type_a_name(status: int, body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    async with mock_client(handler, credentials=Credentials("u", "p")) as client:
        with pytest.raises(CatalogUnavailable) as info:
            await anext(catalog_pages(client))
    sentence = info.value.sentence()
    assert "registry.test does not list its repositories" in sentence
    assert "type a repository name instead" in sentence


# -- classify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        ({"mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG}}, ManifestKind.OCI_IMAGE),
        ({"mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG}, "artifactType": "x/y"},
         ManifestKind.ARTIFACT),
        ({"mediaType": OCI_MANIFEST, "config": {"mediaType": HELM_CONFIG}},
         ManifestKind.ARTIFACT),
        ({"mediaType": DOCKER_MANIFEST, "config": {"mediaType": DOCKER_CONFIG}},
         ManifestKind.DOCKER_IMAGE),
        ({"mediaType": DOCKER_LIST, "manifests": []}, ManifestKind.DOCKER_LIST),
        ({"mediaType": OCI_INDEX, "manifests": []}, ManifestKind.OCI_INDEX),
        ({"schemaVersion": 2, "manifests": []}, ManifestKind.OCI_INDEX),
        ({"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG}, "layers": []},
         ManifestKind.OCI_IMAGE),
    ],
)  # fmt: skip
def test_classify(doc: dict[str, Any], kind: ManifestKind) -> None:
    assert classify(doc) == kind


@pytest.mark.parametrize(
    "doc",
    [
        {"schemaVersion": 1, "fsLayers": []},
        {"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
        {"mediaType": "text/plain"},
    ],
)
def test_classify_refuses_what_it_does_not_read(doc: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        classify(doc)


# -- inspect against distribution 2.8 --------------------------------------------------------


async def test_inspect_an_artifact_pushed_by_hoist(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "model.bin").write_bytes(b"m" * 5000)
    (tmp_path / "notes.txt").write_bytes(b"hello")
    digest, _ = await push_paths(
        registry.host, "browse/artifact:v1", [tmp_path / "model.bin", tmp_path / "notes.txt"]
    )
    async with real_client(registry) as client:
        info = await inspect(client, "browse/artifact", "v1")
    assert info.kind == ManifestKind.ARTIFACT
    assert info.is_artifact
    assert info.digest == digest
    assert info.artifact_type == "application/vnd.unknown.artifact.v1"
    assert [(layer.title, layer.size) for layer in info.layers] == [
        ("model.bin", 5000), ("notes.txt", 5)
    ]  # fmt: skip
    assert info.total_size == 5000 + 5 + 2  # the files and the empty config
    assert info.created and info.created.endswith("Z")
    assert info.pull_command == f"oras pull --plain-http {registry.host}/browse/artifact:v1"
    assert info.referrers is None  # 2.8: no referrers API, and no sha256-<hex> tag
    doc = json.loads(json.dumps(info.to_json()))
    assert doc["kind"] == "oci-artifact"
    assert doc["layers"][0]["title"] == "model.bin"


async def push_image(
    c: httpx.AsyncClient, repo: str, ref: str, *, docker: bool = False, arch: str = "amd64",
    created: str = "2024-05-01T10:00:00Z",
) -> tuple[str, int, bytes]:  # fmt: skip
    """An image of a config and two layers; returns (digest, config+layer bytes, manifest)."""
    config = canonical({"architecture": arch, "os": "linux", "created": created,
                        "rootfs": {"type": "layers", "diff_ids": []}})  # fmt: skip
    layers = [f"{repo}-{arch}-layer-{i}".encode() * (i + 100) for i in range(2)]
    await put_blob(c, repo, config)
    for layer in layers:
        await put_blob(c, repo, layer)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = canonical({
        "schemaVersion": 2, "mediaType": media_type,
        "config": desc(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [desc(DOCKER_LAYER if docker else OCI_LAYER, layer) for layer in layers],
    })  # fmt: skip
    digest = await put_manifest(c, repo, ref, manifest, media_type)
    return digest, len(config) + sum(len(x) for x in layers), manifest


@pytest.mark.parametrize("docker", [False, True])
async def test_inspect_an_image_reads_created_from_its_config(
    registry: RegistryProcess, docker: bool
) -> None:
    repo = f"browse/image-{'docker' if docker else 'oci'}"
    async with httpx.AsyncClient(base_url=registry.url) as c:
        digest, size, _ = await push_image(c, repo, "v1", docker=docker)
    async with real_client(registry) as client:
        info = await inspect(client, repo, "v1")
    assert info.kind == (ManifestKind.DOCKER_IMAGE if docker else ManifestKind.OCI_IMAGE)
    assert not info.is_artifact
    assert info.digest == digest
    assert info.created == "2024-05-01T10:00:00Z"
    assert info.total_size == size
    assert len(info.layers) == 2 and all(layer.title is None for layer in info.layers)
    assert info.pull_command == f"docker pull {registry.host}/{repo}:v1"
    assert info.warnings == []


@pytest.mark.parametrize("docker", [False, True])
async def test_inspect_an_index_sizes_each_platform(
    registry: RegistryProcess, docker: bool
) -> None:
    repo = f"browse/multi-{'docker' if docker else 'oci'}"
    async with httpx.AsyncClient(base_url=registry.url) as c:
        children = []
        for arch, created in (("amd64", "2024-01-01T00:00:00Z"), ("arm64", "2024-02-01T00:00:00Z")):
            _, size, manifest = await push_image(
                c, repo, f"child-{arch}", docker=docker, arch=arch, created=created,
            )  # fmt: skip
            platform = {"os": "linux", "architecture": arch}
            if arch == "arm64":
                platform["variant"] = "v8"
            children.append((desc(DOCKER_MANIFEST if docker else OCI_MANIFEST, manifest,
                                  platform=platform), size))  # fmt: skip
        index_type = DOCKER_LIST if docker else OCI_INDEX
        index = canonical({"schemaVersion": 2, "mediaType": index_type,
                           "manifests": [d for d, _ in children]})  # fmt: skip
        index_digest = await put_manifest(c, repo, "multi", index, index_type)
    async with real_client(registry) as client:
        info = await inspect(client, repo, "multi", concurrency=2)
    assert info.kind == (ManifestKind.DOCKER_LIST if docker else ManifestKind.OCI_INDEX)
    assert info.digest == index_digest
    assert [(p.platform, p.content_size) for p in info.platforms] == [
        ("linux/amd64", children[0][1]), ("linux/arm64/v8", children[1][1])
    ]  # fmt: skip
    assert info.total_size == children[0][1] + children[1][1]
    assert info.created == "2024-02-01T00:00:00Z"  # the newest platform's
    assert info.pull_command.startswith("docker pull ")
    assert json.loads(json.dumps(info.to_json()))["platforms"][1]["platform"] == "linux/arm64/v8"


async def test_inspect_an_index_with_a_missing_child_warns(registry: RegistryProcess) -> None:
    repo = "browse/partial-index"
    async with httpx.AsyncClient(base_url=registry.url) as c:
        digest, _, manifest = await push_image(c, repo, "amd")
        index = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    desc(OCI_MANIFEST, manifest, platform={"os": "linux", "architecture": "amd64"})
                ],
            }
        )
        await put_manifest(c, repo, "multi", index, OCI_INDEX)
        r = await c.delete(f"/v2/{repo}/manifests/{digest}")
        assert r.status_code == 202
    async with real_client(registry) as client:
        info = await inspect(client, repo, "multi")
    assert info.platforms[0].content_size is None
    assert any(digest in w for w in info.warnings)


async def test_inspect_unknown_tag(registry: RegistryProcess) -> None:
    async with real_client(registry) as client:
        with pytest.raises(NotFound):
            await inspect(client, "browse/nothing-here", "v1")


async def test_referrers_through_the_tag_schema(registry: RegistryProcess) -> None:
    # distribution 2.8 has no referrers API: oras keeps an index under the `sha256-<hex>` tag.
    repo = "browse/signed"
    async with httpx.AsyncClient(base_url=registry.url) as c:
        await put_blob(c, repo, EMPTY)
        subject = artifact_manifest(annotations={"n": "subject"})
        subject_digest = await put_manifest(c, repo, "v1", subject)
        signature = artifact_manifest(
            artifactType="application/vnd.example.sig",
            subject=desc(OCI_MANIFEST, subject),
        )
        await put_manifest(c, repo, sha(signature), signature)
        index = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    desc(OCI_MANIFEST, signature, artifactType="application/vnd.example.sig")
                ],
            }
        )
        await put_manifest(c, repo, subject_digest.replace(":", "-"), index, OCI_INDEX)
    async with real_client(registry) as client:
        info = await inspect(client, repo, "v1")
        only_sboms = await referrers(client, repo, subject_digest, artifact_type="x/sbom")
    assert info.referrers is not None
    assert [(r.digest, r.artifact_type) for r in info.referrers] == [
        (sha(signature), "application/vnd.example.sig")
    ]
    assert only_sboms == []


# -- inspect: what distribution can't be made to send ----------------------------------------


async def test_manifest_that_is_not_json() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"schemaVersion": 2, oops', headers=CT_OCI)

    async with mock_client(handler) as client:
        with pytest.raises(RegistryError, match="not valid JSON") as info:
            await inspect(client, "repo", "v1")
    assert "damaged manifest" in info.value.sentence()


@pytest.mark.parametrize(
    "chunk",
    [65537, 65536],
)
async def test_manifest_larger_than_the_cap(chunk: int) -> None:
    body = HugeBody(10 * 1024 * 1024, chunk=b" " * chunk)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=CT_OCI, stream=body)

    async with mock_client(handler) as client:
        with pytest.raises(RegistryError, match="larger than"):
            await inspect(client, "repo", "v1")
    assert body.consumed <= 9 * 1024 * 1024


async def test_manifest_not_matching_its_digest() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=artifact_manifest(), headers=CT_OCI)

    async with mock_client(handler) as client:
        with pytest.raises(RegistryError, match="whose digest is"):
            await inspect(client, "repo", "sha256:" + "0" * 64)


async def test_referrers_api_where_offered() -> None:
    subject = artifact_manifest()
    sbom = artifact_manifest(artifactType="application/spdx+json")
    page2 = artifact_manifest(artifactType="application/vnd.example.sig")

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/repo/manifests/v1":
            return httpx.Response(200, content=subject, headers=CT_OCI)
        if path == f"/v2/repo/referrers/{sha(subject)}":
            assert request.headers["Accept"] == OCI_INDEX
            if request.url.params.get("page") == "2":
                entries = [desc(OCI_MANIFEST, page2, artifactType="application/vnd.example.sig")]
                return httpx.Response(200, json={"schemaVersion": 2, "manifests": entries})
            entries = [desc(OCI_MANIFEST, sbom, artifactType="application/spdx+json")]
            return httpx.Response(
                200,
                json={"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                headers={"Link": f'</v2/repo/referrers/{sha(subject)}?page=2>; rel="next"'},
            )
        return httpx.Response(404)

    async with mock_client(handler) as client:
        info = await inspect(client, "repo", "v1")
    assert info.referrers is not None
    assert [r.artifact_type for r in info.referrers] == [
        "application/spdx+json", "application/vnd.example.sig"
    ]  # fmt: skip


# -- delete against distribution 2.8 ---------------------------------------------------------


async def test_delete_a_tag_removes_every_tag_of_its_digest(registry: RegistryProcess) -> None:
    repo = "browse/delete-me"
    async with httpx.AsyncClient(base_url=registry.url) as c:
        await put_blob(c, repo, EMPTY)
        shared = artifact_manifest(annotations={"which": "shared"})
        other = artifact_manifest(annotations={"which": "other"})
        for tag in ("a", "b", "c"):
            digest = await put_manifest(c, repo, tag, shared)
        await put_manifest(c, repo, "keep", other)
    async with real_client(registry) as client:
        assert await resolve_digest(client, repo, "b") == digest
        assert sorted(await tags_sharing_digest(client, repo, digest)) == ["a", "b", "c"]
        assert await delete(client, repo, "a") == digest
        assert await client.head_manifest(repo, "b") is None
        tags = [t for p in [p async for p in tag_pages(client, repo)] for t in p.items]
        assert tags == ["keep"]
        with pytest.raises(NotFound, match="does not exist"):
            await delete(client, repo, "a")


async def test_delete_refused_when_the_registry_disables_it(
    registry_factory: RegistryFactory,
) -> None:
    reg = registry_factory(extra_config={"storage": {"delete": {"enabled": False}}})
    async with httpx.AsyncClient(base_url=reg.url) as c:
        await put_blob(c, "r", EMPTY)
        digest = await put_manifest(c, "r", "v1", artifact_manifest())
    async with real_client(reg) as client:
        with pytest.raises(DeleteRefused) as info:
            await delete(client, "r", "v1")
        assert await client.head_manifest("r", "v1") == digest
    assert info.value.status == 405
    assert info.value.code == "UNSUPPORTED"
    sentence = info.value.sentence()
    assert "deleting is turned off" in sentence
    assert "The operation is unsupported" in sentence
