"""Issue 16, the data half: never lose or mangle a user's bytes.

Each test reproduces one defect the hostile probe found, against the real distribution 2.8
registry (tests/conftest.py) wherever it can show the fault: files edited while pushed, pulls
over the user's own files, a full disk while unpacking, folders holding what a pull can't
restore, a second image in one OCI layout, Ctrl-C while a folder is packed, a registry lying
about a manifest's digest, a proxy answering 413 to a single-request PUT.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults_helpers import wait_until
from pushing import ISOLATED_ENV, ROOT, hoist_cli
from support.proxy import FaultProxy, ProxyFactory, match
from support.registry import RegistryProcess
from test_download import make_bytes, sha

from hoist.core.errors import FileChanged, HoistError, SourceError
from hoist.core.oci.annotations import TITLE
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, Event
from hoist.core.registry.client import RegistryClient
from hoist.core.sources.content import FileRange
from hoist.core.transfer.push import TransferRun, plan_file_push

KiB = 1024
MiB = 1024 * KiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


async def push(
    host: str,
    repo_tag: str,
    paths: list[Path],
    *,
    chunk_size: int = 0,
    on_event: Callable[[Event], None] | None = None,
    pack: bool = False,
) -> str:
    """Push files or folders with the engine (`pack`: each folder as one tar); return the
    manifest digest."""
    target = parse_reference(f"{host}/{repo_tag}")
    transfer = plan_file_push(target, paths, chunk_size=chunk_size, pack=pack)
    async with RegistryClient(target.api_host, plain_http=True) as client:
        return await TransferRun(transfer, client, on_event=on_event).run()


def manifest_status(url: str, repo: str, ref: str) -> int:
    return httpx.head(
        f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
    ).status_code


def canonical(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def put_blob(url: str, repo: str, data: bytes) -> dict[str, object]:
    r = httpx.post(f"{url}/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = httpx.URL(url).join(r.headers["Location"]).copy_add_param("digest", sha(data))
    r = httpx.put(location, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return {"digest": sha(data), "size": len(data)}


def put_manifest(url: str, repo: str, ref: str, doc: dict[str, object]) -> bytes:
    data = canonical(doc)
    r = httpx.put(
        f"{url}/v2/{repo}/manifests/{ref}", content=data, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201, r.text
    return data


def put_image(url: str, repo: str, tag: str, seed: int) -> bytes:
    config = canonical({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"},
                        "seed": seed})  # fmt: skip
    layer = make_bytes(20 * KiB, seed=seed)
    return put_manifest(url, repo, tag, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **put_blob(url, repo, config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    **put_blob(url, repo, layer)}],
    })  # fmt: skip


def put_untitled_artifact(url: str, repo: str, tag: str, blobs: list[bytes]) -> None:
    put_blob(url, repo, b"{}")
    put_manifest(url, repo, tag, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.test",
        "config": {"mediaType": EMPTY_TYPE, "digest": sha(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", **put_blob(url, repo, b)}
                   for b in blobs],
    })  # fmt: skip


def hoist_process(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m hoist.core ARGS` as a running subprocess (for Ctrl-C)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hoist.core", *args], cwd=ROOT,
        env={**os.environ, **ISOLATED_ENV, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


# -- #4: a file edited while it is pushed ---------------------------------------------------------


async def test_file_edited_while_pushed_is_never_committed(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """The edit lands in bytes not yet sent: without a check the registry gets old bytes
    followed by new ones, a blob that never existed on disk, and the push says done."""
    path = tmp_path / "model.bin"
    path.write_bytes(make_bytes(512 * KiB))
    edited = False

    def edit_after_first_chunk(event: Event) -> None:
        nonlocal edited
        if isinstance(event, BlobEvent) and event.acknowledged >= 64 * KiB and not edited:
            edited = True
            with open(path, "r+b") as f:
                f.seek(400 * KiB)
                f.write(b"edited" * 100)

    with pytest.raises(FileChanged) as caught:
        await push(
            registry.host, "hostile/edited:v1", [path], chunk_size=64 * KiB,
            on_event=edit_after_first_chunk,
        )  # fmt: skip
    assert edited
    assert "model.bin" in caught.value.sentence()
    assert "--restart-changed" in caught.value.sentence()
    assert manifest_status(registry.url, "hostile/edited", "v1") == 404


async def test_file_edited_while_pushed_fails_the_command(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """The same through `hoist push`: never exit 0 (a rate cap keeps the push going while
    the file is edited; the edit waits for the first progress line, not for a guessed time)."""
    path = tmp_path / "data.bin"
    path.write_bytes(make_bytes(3 * MiB, seed=4))
    proc = hoist_process(
        "push", f"{registry.host}/hostile/edited-cli:v1", str(path), "--chunk-size", "256KiB",
        "--limit-rate", "1MiB/s", "--progress", "json", env={"HOIST_STATE_DIR": str(state_dir)},
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if '"acknowledged": 262144' in line or '"acknowledged": 524288' in line:
            break
    with open(path, "r+b") as f:
        f.seek(2 * MiB)
        f.write(b"edited")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "data.bin" in err and "changed" in err
    assert out == ""
    assert manifest_status(registry.url, "hostile/edited-cli", "v1") == 404


# -- #19: 413 to a single-request PUT -------------------------------------------------------------


async def test_413_to_a_single_request_put_falls_back_to_chunks(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """nginx's default `client_max_body_size 1m` refuses every request body above 1 MiB: a
    file smaller than one chunk (sent in one PUT) must go in chunks, as the 413 hint says."""
    proxy: FaultProxy = fault_proxy(registry)
    proxy.respond_instead(
        match(min_content_length=1 * MiB), 413, {"Content-Type": "text/html"},
        b"<html><head><title>413 Request Entity Too Large</title></head></html>", times=None,
    )  # fmt: skip
    data = make_bytes(3 * MiB + 5, seed=19)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    await push(proxy.host, "hostile/nginx:v1", [path])
    manifest = httpx.get(
        f"{registry.url}/v2/hostile/nginx/manifests/v1", headers={"Accept": OCI_MANIFEST}
    ).json()
    assert manifest["layers"][0]["digest"] == sha(data)
    blob = httpx.get(f"{registry.url}/v2/hostile/nginx/blobs/{sha(data)}").content
    assert blob == data
    patches = [r for r in proxy.requests if r.method == "PATCH" and r.status == 202]
    assert patches and all((r.content_length or 0) <= 1 * MiB for r in patches)


# -- #10: the digest printed after a push ---------------------------------------------------------


async def test_manifest_digest_the_registry_claims_is_verified(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """A registry (or a proxy) answering the manifest PUT with another digest: Hoist must not
    print `REF@<that digest>` as what it pushed."""
    proxy: FaultProxy = fault_proxy(registry)
    liar = "sha256:" + "0" * 64
    proxy.fail_every(
        1, 201, match=match("PUT", "/manifests/"), forward=True,
        headers={"Docker-Content-Digest": liar}, body=b"",
    )  # fmt: skip
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello\n")
    with pytest.raises(HoistError) as caught:
        await push(proxy.host, "hostile/liar:v1", [path])
    assert liar in str(caught.value)
    proxy.clear_faults()
    digest = await push(proxy.host, "hostile/liar:v2", [path])
    stored = httpx.get(
        f"{registry.url}/v2/hostile/liar/manifests/v2", headers={"Accept": OCI_MANIFEST}
    )
    assert digest == sha(stored.content)


# -- #8 and the ref.name annotation: two images in one OCI layout ---------------------------------


async def test_second_image_pulled_into_a_layout_keeps_the_first(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    first = put_image(registry.url, "hostile/layout", "v1", seed=1)
    second = put_image(registry.url, "hostile/layout", "v2", seed=2)
    out = tmp_path / "layout"
    for tag in ("v1", "v2"):
        result = hoist_cli("pull", f"{registry.host}/hostile/layout:{tag}", "-o", str(out))
        assert result.returncode == 0, result.stderr
    index = json.loads((out / "index.json").read_bytes())
    entries = {m["annotations"][REF_NAME]: m["digest"] for m in index["manifests"]}
    assert entries == {"v1": sha(first), "v2": sha(second)}
    for tag, manifest in (("v1", first), ("v2", second)):
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{out}:{tag}"], capture_output=True, timeout=60
        )
        assert raw.returncode == 0, raw.stderr
        assert raw.stdout == manifest
    # Pulled again, a tag that moved replaces its own entry and nothing else.
    moved = put_image(registry.url, "hostile/layout", "v1", seed=3)
    assert hoist_cli("pull", f"{registry.host}/hostile/layout:v1", "-o", str(out)).returncode == 0
    index = json.loads((out / "index.json").read_bytes())
    entries = {m["annotations"][REF_NAME]: m["digest"] for m in index["manifests"]}
    assert entries == {"v1": sha(moved), "v2": sha(second)}
    # Pinned by digest (as the window's downloads are), the tag still names the entry.
    pinned = tmp_path / "pinned"
    ref = f"{registry.host}/hostile/layout:v2@{sha(second)}"
    assert hoist_cli("pull", ref, "-o", str(pinned)).returncode == 0
    (entry,) = json.loads((pinned / "index.json").read_bytes())["manifests"]
    assert entry["annotations"] == {REF_NAME: "v2"} and entry["digest"] == sha(second)


async def test_a_layout_index_that_is_not_hoists_is_not_replaced(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    put_image(registry.url, "hostile/layout-junk", "v1", seed=4)
    out = tmp_path / "layout"
    out.mkdir()
    (out / "index.json").write_text("my notes, not an index\n")
    result = hoist_cli("pull", f"{registry.host}/hostile/layout-junk:v1", "-o", str(out))
    assert result.returncode == 1
    assert "index.json" in result.stderr
    assert (out / "index.json").read_text() == "my notes, not an index\n"


# -- #7: a folder holding what a pull can't restore -----------------------------------------------


def _link_out(folder: Path) -> Path:
    (folder / "escape").symlink_to("../../outside")
    return folder / "escape"


def _link_absolute(folder: Path) -> Path:
    (folder / "abs").symlink_to(folder / "a.txt")
    return folder / "abs"


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe")
    return folder / "pipe"


def _socket(folder: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    sock.close()
    return folder / "sock"


def _dir_link_out(folder: Path) -> Path:
    (folder / "sub" / "up").symlink_to("../..", target_is_directory=True)
    return folder / "sub" / "up"


@pytest.mark.parametrize(
    "plant", [_link_out, _link_absolute, _fifo, _socket, _dir_link_out],
    ids=["link-out", "absolute-link", "fifo", "socket", "folder-link-out"],
)  # fmt: skip
async def test_folder_with_what_pull_rejects_is_refused_at_push(
    plant: Callable[[Path], Path], registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a\n")
    (folder / "sub" / "b.txt").write_text("b\n")
    bad = plant(folder)
    with pytest.raises(SourceError) as caught:
        await push(registry.host, "hostile/folder:v1", [folder])
    assert str(bad) in caught.value.sentence()
    assert manifest_status(registry.url, "hostile/folder", "v1") == 404
    staging = state_dir / "staging"
    assert not staging.exists() or not any(staging.rglob("*.tar.gz"))


async def test_folder_with_links_inside_it_round_trips(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Links that stay inside the folder (to a file, and to a sub-folder) are what a pull
    restores: they are pushed, and come back as links (a link to a folder used to vanish)."""
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.txt").write_text("b\n")
    (folder / "to-b").symlink_to("sub/b.txt")
    (folder / "to-sub").symlink_to("sub", target_is_directory=True)
    await push(registry.host, "hostile/folder-links:v1", [folder], pack=True)  # links: packed
    out = tmp_path / "out"
    result = hoist_cli("pull", f"{registry.host}/hostile/folder-links:v1", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert os.readlink(out / "data" / "to-b") == "sub/b.txt"
    assert os.readlink(out / "data" / "to-sub") == "sub"
    assert (out / "data" / "to-sub" / "b.txt").read_text() == "b\n"


# -- #5: a pull never replaces the user's own files -----------------------------------------------


async def test_pull_refuses_to_replace_a_users_file_unless_forced(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    notes, keys = tmp_path / "notes.txt", tmp_path / "authorized_keys"
    notes.write_bytes(b"pushed notes\n")
    keys.write_bytes(b"pushed keys!\n")
    await push(registry.host, "hostile/overwrite:v1", [notes, keys])
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"my own notes, longer than the pushed ones\n")
    (out / "authorized_keys").write_bytes(b"ssh-ed25519 \n")  # the same size, other bytes
    ref = f"{registry.host}/hostile/overwrite:v1"
    result = hoist_cli("pull", ref, "-o", str(out))
    assert result.returncode == 1
    assert "notes.txt" in result.stderr and "--force" in result.stderr
    assert (out / "notes.txt").read_bytes() == b"my own notes, longer than the pushed ones\n"
    assert (out / "authorized_keys").read_bytes() == b"ssh-ed25519 \n"
    assert sorted(p.name for p in out.iterdir()) == ["authorized_keys", "notes.txt"]
    # An identical file is not a conflict; a different one of the same size is.
    (out / "notes.txt").write_bytes(b"pushed notes\n")
    result = hoist_cli("pull", ref, "-o", str(out))
    assert result.returncode == 1
    assert "authorized_keys" in result.stderr
    assert (out / "authorized_keys").read_bytes() == b"ssh-ed25519 \n"
    result = hoist_cli("pull", ref, "-o", str(out), "--force")
    assert result.returncode == 0, result.stderr
    assert (out / "authorized_keys").read_bytes() == b"pushed keys!\n"


async def test_pull_into_a_folder_raises_a_typed_error_the_window_can_ask_about(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    from hoist.core.errors import ReplaceRefused
    from hoist.core.transfer.download import pull

    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"pushed\n")
    await push(registry.host, "hostile/overwrite-core:v1", [notes])
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"mine\n")
    async with RegistryClient(registry.host, plain_http=True) as client:
        with pytest.raises(ReplaceRefused) as caught:
            await pull(client, "hostile/overwrite-core", "v1", out)
        assert caught.value.paths == [out / "notes.txt"]
        assert (out / "notes.txt").read_bytes() == b"mine\n"
        await pull(client, "hostile/overwrite-core", "v1", out, overwrite=True)
    assert (out / "notes.txt").read_bytes() == b"pushed\n"


async def test_pull_blob_refuses_to_replace_another_file(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    from hoist.core.errors import ReplaceRefused
    from hoist.core.transfer.download import pull_blob

    blob = make_bytes(3000, seed=5)
    digest = str(put_blob(registry.url, "hostile/blob", blob)["digest"])
    (tmp_path / "named.bin").write_bytes(b"mine")
    async with RegistryClient(registry.host, plain_http=True) as client:
        with pytest.raises(ReplaceRefused):
            await pull_blob(client, "hostile/blob", digest, tmp_path, name="named.bin")
        assert (tmp_path / "named.bin").read_bytes() == b"mine"
        await pull_blob(client, "hostile/blob", digest, tmp_path, name="named.bin", overwrite=True)
        assert (tmp_path / "named.bin").read_bytes() == blob
        again = await pull_blob(client, "hostile/blob", digest, tmp_path, name="named.bin")
    assert again.reused


async def test_the_window_learns_which_files_a_download_would_replace(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """The queue keeps the typed error, so the window can ask; yes runs it again, replacing."""
    from hoist.core.errors import ReplaceRefused
    from hoist.core.transfer.download import plan_download
    from hoist.core.transfer.journal import TransferJournal
    from hoist.core.transfer.model import TransferState
    from hoist.core.transfer.queue import TransferQueue

    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"pushed\n")
    await push(registry.host, "hostile/overwrite-queue:v1", [notes])
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"mine\n")
    queue = TransferQueue(
        TransferJournal(), client_factory=lambda t: RegistryClient(registry.host, plain_http=True)
    )
    ended = asyncio.Event()
    queue.listeners.append(lambda kind, item: ended.set() if not item.running else None)
    item = queue.add(plan_download(parse_reference(f"{registry.host}/hostile/overwrite-queue:v1"),
                                   out))  # fmt: skip
    try:
        while item.state != TransferState.FAILED:
            ended.clear()
            await asyncio.wait_for(ended.wait(), 30)
        assert isinstance(item.failure, ReplaceRefused)
        assert item.failure.paths == [out / "notes.txt"]
        assert (out / "notes.txt").read_bytes() == b"mine\n"
        queue.replace_and_retry(item.id)
        while item.state != TransferState.DONE:
            ended.clear()
            await asyncio.wait_for(ended.wait(), 30)
    finally:
        await queue.aclose()
    assert item.failure is None
    assert (out / "notes.txt").read_bytes() == b"pushed\n"


def test_the_window_asks_before_a_download_replaces_files(qtbot: Any, tmp_path: Path) -> None:
    """The question, shown once per refusal; the safe answer is the default; Replace calls
    the queue's replace_and_retry with the transfer's id."""
    from hoist.core.errors import ReplaceRefused
    from hoist.core.transfer.download import plan_download
    from hoist.core.transfer.model import TransferState
    from hoist.core.transfer.queue import TransferItem
    from hoist.gui.transfers.replace_prompt import ReplaceAsker

    replaced: list[str] = []
    asker = ReplaceAsker(replaced.append)
    item = TransferItem(plan_download(parse_reference("localhost:5000/a/b:v1"), tmp_path))
    item.transfer.state = TransferState.FAILED
    item.failure = ReplaceRefused("1 file would be replaced", [tmp_path / "notes.txt"])
    asker("changed", item)
    prompt = asker.prompt
    assert prompt is not None and prompt.isVisible()
    qtbot.addWidget(prompt)
    assert str(tmp_path / "notes.txt") in prompt.files_label.text()
    assert prompt.keep_button.isDefault()
    asker("changed", item)  # the same refusal again (a repaint, a progress tick): no new question
    assert asker.prompt is prompt
    prompt.replace_button.click()
    assert replaced == [item.id]


# -- #6: the disk fills up while a folder is unpacked ---------------------------------------------


@pytest.mark.slow
async def test_disk_full_while_unpacking_keeps_the_download_and_resumes(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A real full disk: a 3 MiB tmpfs (in a private mount namespace) holds the 2 MiB archive
    but not the folder unpacked beside it. Then the tmpfs grows, and the same pull finishes
    from the archive it kept."""
    if shutil.which("unshare") is None:
        pytest.fail("util-linux `unshare` is needed to give this test a small disk of its own")
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "random.bin").write_bytes(make_bytes(2 * MiB, seed=6))
    await push(registry.host, "hostile/diskfull:v1", [folder], pack=True)  # unpacked on pull
    disk = tmp_path / "disk"
    disk.mkdir()
    python, ref = sys.executable, f"{registry.host}/hostile/diskfull:v1"
    script = f"""
set -u
mount -t tmpfs -o size=3m tmpfs {disk}
{python} -m hoist.core pull {ref} -o {disk} --progress plain
echo "first=$?"
ls -A {disk}
mount -o remount,size=16m {disk}
{python} -m hoist.core pull {ref} -o {disk} --progress plain
echo "second=$?"
ls -A {disk}
cmp {disk}/big/random.bin {folder}/random.bin && echo same
"""
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **ISOLATED_ENV, "HOIST_STATE_DIR": str(state_dir)}, timeout=120,
    )  # fmt: skip
    out = result.stdout
    first, _, second = out.partition("second=")
    assert "first=1" in first, result.stderr
    assert ".big.hoist-folder" in first  # the download is kept
    assert "disk" in result.stderr and "full" in result.stderr
    assert "registry" not in result.stderr.split("hoist:", 1)[1].splitlines()[0]
    assert second.startswith("0"), result.stderr
    assert ".big.hoist-folder" not in second and "big" in second
    assert "same" in second


# -- #9: Ctrl-C while a folder is packed ----------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_while_a_folder_is_packed_leaves_no_archive(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "random.bin", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(MiB))
    proc = hoist_process(
        "push", f"{registry.host}/hostile/packing:v1", str(folder), "--pack",
        env={"HOIST_STATE_DIR": str(state_dir)},
    )  # fmt: skip
    staging = state_dir / "staging"

    def packing() -> bool:
        return staging.exists() and any(p.stat().st_size > 0 for p in staging.rglob("*.tar.gz"))

    wait_until(packing, 60.0, "the folder's archive to be written")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert list(staging.rglob("*")) == []
    assert manifest_status(registry.url, "hostile/packing", "v1") == 404


async def test_a_stop_just_as_packing_ends_leaves_no_archive(
    state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or Cancel) that lands after the packing thread finished but before its caller
    took the result: the archive it staged is removed all the same. Under load this is what
    left an archive behind in test_ctrl_c_while_a_folder_is_packed_leaves_no_archive."""
    import threading

    from hoist.core.transfer import push

    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(1000))
    started, go, planned = threading.Event(), threading.Event(), threading.Event()
    real_plan = push.plan_file_push

    def plan_then_say_so(*args: Any, **kwargs: Any) -> Any:
        started.set()
        go.wait(30)
        transfer = real_plan(*args, **kwargs)
        planned.set()
        return transfer

    monkeypatch.setattr(push, "plan_file_push", plan_then_say_so)
    target = parse_reference("localhost:5000/hostile/stop-late:v1")
    task = asyncio.create_task(push.plan_file_push_in_thread(target, [folder], pack=True))
    assert await asyncio.to_thread(started.wait, 30), "the planning thread never started"

    def cancel_once_planned() -> None:
        # In the loop's thread, so the worker's result can't reach the task before the cancel.
        go.set()
        assert planned.wait(30), "the packing never ended"
        task.cancel()

    asyncio.get_running_loop().call_soon(cancel_once_planned)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((state_dir / "staging").rglob("*.tar.gz")) == []


# -- smaller things seen on the command line ------------------------------------------------------


async def test_pull_of_layers_without_a_title_says_what_is_there(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    blobs = [make_bytes(1000, seed=1), make_bytes(2000, seed=2)]
    put_untitled_artifact(registry.url, "hostile/untitled", "v1", blobs)
    out = tmp_path / "out"
    ref = f"{registry.host}/hostile/untitled:v1"
    result = hoist_cli("pull", ref, "-o", str(out))
    assert result.returncode == 1
    assert "2 layers" in result.stderr and "--untitled" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    result = hoist_cli("pull", ref, "-o", str(out), "--untitled")
    assert result.returncode == 0, result.stderr
    for blob in blobs:
        assert (out / sha(blob).replace(":", "-")).read_bytes() == blob


async def test_a_download_in_the_window_says_untitled_layers_were_not_written(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    from hoist.core.progress import TransferEvent
    from hoist.core.transfer.download import DownloadRun, plan_download

    put_untitled_artifact(registry.url, "hostile/untitled-window", "v1", [b"one", b"two"])
    events: list[Event] = []
    source = parse_reference(f"{registry.host}/hostile/untitled-window:v1")
    async with RegistryClient(registry.host, plain_http=True) as client:
        await DownloadRun(
            plan_download(source, tmp_path / "out"), client, on_event=events.append
        ).run()
    (done,) = [e for e in events if isinstance(e, TransferEvent) and e.state == "done"]
    assert "2 layers without a file name" in done.message


@pytest.mark.slow
def test_ctrl_c_in_a_pull_says_how_to_resume(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    data = make_bytes(4 * MiB, seed=9)
    put_blob(registry.url, "hostile/pull-ctrl-c", b"{}")
    put_manifest(registry.url, "hostile/pull-ctrl-c", "v1", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.test",
        "config": {"mediaType": EMPTY_TYPE, "digest": sha(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream",
                    **put_blob(registry.url, "hostile/pull-ctrl-c", data),
                    "annotations": {TITLE: "data.bin"}}],
    })  # fmt: skip
    proxy: FaultProxy = fault_proxy(registry)
    out = tmp_path / "out"
    partial = out / "data.bin.partial"
    proxy.fail_every(1, 503, match=match("GET", "/blobs/" + sha(data)))
    proc = hoist_process(
        "pull", f"{proxy.host}/hostile/pull-ctrl-c:v1", "-o", str(out), "--progress", "plain",
        env={"HOIST_STATE_DIR": str(state_dir)},
    )  # fmt: skip
    wait_until(lambda: any(r.status == 503 for r in proxy.requests), 60.0, "the blob request")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "hoist pull" in err and str(out) in err and "resume" in err.lower()
    assert "Traceback" not in err
    proxy.clear_faults()
    result = hoist_cli("pull", f"{proxy.host}/hostile/pull-ctrl-c:v1", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "data.bin").read_bytes() == data
    assert not partial.exists()


@pytest.mark.slow
def test_ctrl_c_in_a_push_says_paused_once(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(make_bytes(4 * MiB, seed=10))
    proc = hoist_process(
        "push", f"{registry.host}/hostile/paused:v1", str(path), "--chunk-size", "256KiB",
        "--limit-rate", "1MiB/s", "--progress", "plain", env={"HOIST_STATE_DIR": str(state_dir)},
    )  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("transfer "), first
    transfer_id = first.split()[1].rstrip(":")
    wait_until(lambda: (state_dir / "transfers" / f"{transfer_id}.json").exists(), 60.0, "journal")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("aused") == 1, err
    assert f"hoist resume {transfer_id}" in err


def test_resent_counts_only_bytes_that_left_the_machine(tmp_path: Path) -> None:
    """What was handed to the kernel is not what was sent: when a connection breaks, up to
    4 MiB (tcp_wmem) still sat in the send queue, never crossed the network, and was counted
    as sent, then as re-sent once the chunk went again (`resent` overstated by ~4 MiB).

    A server that reads 7.5 MiB of the body and resets stands in for the registry (a real one
    can't be made to stop reading with a small receive buffer); bytes counted may exceed
    what it read only by what its small receive buffer held."""
    import fcntl
    import struct
    import termios
    import threading

    from hoist.core.errors import NetworkError
    from hoist.core.oci.digest import SequentialHasher
    from hoist.core.registry.filebody import FileBodySender

    path = tmp_path / "big.bin"
    path.write_bytes(make_bytes(24 * MiB, seed=12))
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    read = 0

    def serve() -> None:
        nonlocal read
        conn, _ = server.accept()
        with conn:
            while read < 7 * MiB + 512 * KiB:
                data = conn.recv(64 * KiB)
                if not data:
                    break
                read += len(data)
            # Reset once the client's send queue holds bytes that never crossed.
            wait_until(
                lambda: queued(client[0]) >= 1 * MiB, 60.0, "the client's send queue to fill"
            )
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")

    client: list[socket.socket] = []

    def queued(sock: socket.socket) -> int:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    thread = threading.Thread(target=serve)
    thread.start()
    counted: list[int] = []
    sender = FileBodySender(False, 10.0, "hoist-test")
    url = httpx.URL(f"http://127.0.0.1:{server.getsockname()[1]}/v2/x/blobs/uploads/1")
    try:
        with pytest.raises(NetworkError):
            sender.send(
                "PATCH", url, {"Content-Type": "application/octet-stream"},
                FileRange.whole(path), 0, 24 * MiB, SequentialHasher(), on_block=counted.append,
                throttle=None, abort=threading.Event(), on_socket=client.append,
            )  # fmt: skip
    finally:
        thread.join()
        sender.close()
        server.close()
    assert read >= 7 * MiB + 512 * KiB
    assert sum(counted) <= read + 256 * KiB, (sum(counted), read)


@pytest.mark.slow
async def test_cancelling_the_window_while_a_folder_is_packed_leaves_no_archive(
    state_dir: Path, tmp_path: Path
) -> None:
    """The window plans in a worker thread too: its task cancelled (the sheet or the window
    closed), the packing stops and removes what it staged."""
    from hoist.core.transfer.push import plan_file_push_in_thread

    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "random.bin", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(MiB))
    staging = state_dir / "staging"
    planning = asyncio.ensure_future(
        plan_file_push_in_thread(
            parse_reference("localhost:5000/hostile/packing:v1"), [folder], pack=True
        )
    )

    def packing() -> bool:
        return staging.exists() and any(p.stat().st_size > 0 for p in staging.rglob("*.tar.gz"))

    while not packing():
        assert not planning.done()
        await asyncio.sleep(0.01)
    planning.cancel()
    with pytest.raises(asyncio.CancelledError):
        await planning
    # The thread stops at its next block and cleans up; without a stop it would pack on
    # and leave the archive for ever.
    deadline = time.monotonic() + 60
    while list(staging.rglob("*")) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert list(staging.rglob("*")) == []
