"""A push and a download are two types over a shared base (`Push`, `Download`), and the journal
entries the previous version wrote (one `Transfer` with every field, a download's source under
`target`) still load as the right one."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from hoist.core.errors import JournalError
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobState
from hoist.core.sources.image import PlanManifest
from hoist.core.transfer.journal import JOURNAL_VERSION, TransferJournal
from hoist.core.transfer.model import (
    ARTIFACT,
    DOWNLOAD,
    IMAGE,
    Download,
    DownloadPart,
    Push,
    TransferState,
    load_transfer,
    transfer_from_json,
)
from hoist.core.transfer.queue import TransferItem

DIGEST = "sha256:" + "ab" * 32
MANIFEST = b'{"schemaVersion":2}'

#: Written by the version before the split (journal version 2): every field of both kinds.
OLD_ARTIFACT_PUSH: dict[str, Any] = {
    "version": 2,
    "id": "20261201-101010-aaaaaa",
    "target": "localhost:5000/models/llm:v1",
    "kind": "artifact",
    "sources": ["/data/model.bin"],
    "blobs": [
        {
            "name": "model.bin",
            "source": {"path": "/data/model.bin", "offset": 0, "length": 3000},
            "identity": {"size": 3000, "mtime_ns": 1700000000000000000, "inode": 42},
            "media_type": "application/octet-stream",
            "annotations": {"org.opencontainers.image.title": "model.bin"},
            "digest": DIGEST,
            "state": "uploading",
            "location": "http://localhost:5000/v2/models/llm/blobs/uploads/u1?_state=x",
            "acknowledged": 1024,
            "prefix_digest": None,
            "restarts": 0,
            "chunk_size": 1024,
            "mounted_from": None,
        }
    ],
    "manifests": [],
    "artifact_type": "application/vnd.example.model",
    "state": "paused",
    "error": "",
    "result": None,
    "plain_http": True,
    "chunk_size": 1024,
    "parallel": 4,
    "created": 1764583810.5,
    "created_iso": "2026-12-01T10:10:10Z",
    "mount_from": [],
    "destination": "",
    "platform": None,
    "overwrite": False,
    "parts": [],
    "completed": [],
    "annotations": {"org.example.note": "kept"},
}

OLD_IMAGE_PUSH: dict[str, Any] = {
    **OLD_ARTIFACT_PUSH,
    "id": "20261201-101011-bbbbbb",
    "target": "localhost:5000/apps/web:2.0",
    "kind": "image",
    "sources": ["/images/web.tar"],
    "blobs": [],
    "manifests": [
        {
            "media_type": "application/vnd.oci.image.manifest.v1+json",
            "digest": DIGEST,
            "data": base64.b64encode(MANIFEST).decode(),
            "tag": "2.0",
        }
    ],
    "artifact_type": "application/vnd.unknown.artifact.v1",
    "mount_from": ["apps/base"],
    "annotations": {},
}

#: A download as the previous version wrote it: `target` is what it fetches, and it carries
#: the push's fields, empty.
OLD_DOWNLOAD: dict[str, Any] = {
    "version": 2,
    "id": "20261201-101012-cccccc",
    "target": f"localhost:5000/models/llm:v1@{DIGEST}",
    "kind": "download",
    "sources": [],
    "blobs": [],
    "manifests": [],
    "artifact_type": "application/vnd.unknown.artifact.v1",
    "state": "pausing",
    "error": "",
    "result": None,
    "plain_http": None,
    "chunk_size": 0,
    "parallel": 2,
    "created": 1764583812.0,
    "created_iso": "2026-12-01T10:10:12Z",
    "mount_from": [],
    "destination": "/home/me/models",
    "platform": "linux/arm64",
    "overwrite": True,
    "parts": [
        {
            "name": "model.bin",
            "size": 3000,
            "file": "/home/me/models/model.bin",
            "received": 1000,
            "state": "paused",
            "kind": "file",
        },
        {
            "name": "data",
            "size": 500,
            "file": "/home/me/models/.data.hoist-folder",
            "received": 500,
            "state": "done",
            "kind": "folder",
        },
    ],
    "completed": ["/home/me/models/data"],
    "annotations": {},
}


def journal_with(tmp_path: Path, doc: dict[str, Any]) -> TransferJournal:
    """A journal folder holding `doc` as the previous version wrote it (its own bytes)."""
    journal = TransferJournal(tmp_path / "transfers")
    journal.path(doc["id"]).write_text(json.dumps(doc, indent=1))
    return journal


def test_an_old_artifact_push_loads_as_a_push(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, OLD_ARTIFACT_PUSH)
    push = load_transfer(journal, OLD_ARTIFACT_PUSH["id"])
    assert isinstance(push, Push) and push.kind == ARTIFACT and not push.is_image
    assert push.target == parse_reference("localhost:5000/models/llm:v1")
    assert push.reference == push.target
    assert push.sources == ["/data/model.bin"] and push.name == "model.bin"
    assert push.artifact_type == "application/vnd.example.model"
    assert push.annotations == {"org.example.note": "kept"}
    assert (push.state, push.plain_http, push.chunk_size, push.parallel) == (
        TransferState.PAUSED, True, 1024, 4
    )  # fmt: skip
    assert (push.created, push.created_iso) == (1764583810.5, "2026-12-01T10:10:10Z")
    [blob] = push.blobs
    assert (blob.name, blob.digest, blob.acknowledged, blob.state) == (
        "model.bin", DIGEST, 1024, BlobState.UPLOADING
    )  # fmt: skip
    assert blob.location is not None and blob.location.endswith("u1?_state=x")
    assert (push.total, push.acknowledged) == (3000, 1024)


def test_an_old_image_push_loads_as_a_push_with_its_manifests(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, OLD_IMAGE_PUSH)
    push = load_transfer(journal, OLD_IMAGE_PUSH["id"])
    assert isinstance(push, Push) and push.kind == IMAGE and push.is_image
    assert push.manifests == [
        PlanManifest("application/vnd.oci.image.manifest.v1+json", DIGEST, MANIFEST, "2.0")
    ]
    assert push.mount_from == ["apps/base"]
    assert str(push.target) == "localhost:5000/apps/web:2.0"


def test_an_old_download_loads_as_a_download_whose_target_is_its_source(
    tmp_path: Path,
) -> None:
    journal = journal_with(tmp_path, OLD_DOWNLOAD)
    download = load_transfer(journal, OLD_DOWNLOAD["id"])
    assert isinstance(download, Download) and download.kind == DOWNLOAD
    assert str(download.source) == f"localhost:5000/models/llm:v1@{DIGEST}"
    assert download.reference == download.source
    assert download.destination == "/home/me/models"
    assert (download.platform, download.overwrite) == ("linux/arm64", True)
    assert download.completed == ["/home/me/models/data"]
    assert download.parts == [
        DownloadPart("model.bin", 3000, "/home/me/models/model.bin", 1000, BlobState.PAUSED),
        DownloadPart(
            "data", 500, "/home/me/models/.data.hoist-folder", 500, BlobState.DONE, "folder"
        ),
    ]
    assert (download.total, download.acknowledged) == (3500, 1500)
    assert download.name == "llm:v1 (linux/arm64)"
    assert download.state == TransferState.PAUSING  # the queue reads it as paused at rest
    assert not hasattr(download, "blobs") and not hasattr(download, "target")


@pytest.mark.parametrize("old", [OLD_ARTIFACT_PUSH, OLD_IMAGE_PUSH, OLD_DOWNLOAD])
def test_an_old_entry_saved_again_reads_back_the_same(tmp_path: Path, old: dict[str, Any]) -> None:
    """Resumed and written again in the new format, nothing is lost."""
    journal = journal_with(tmp_path, old)
    transfer = load_transfer(journal, old["id"])
    journal.save(transfer.id, transfer.to_json())
    doc = journal.load(transfer.id)
    assert doc["version"] == JOURNAL_VERSION
    assert transfer_from_json(doc) == transfer


def test_each_type_writes_only_its_own_fields() -> None:
    """A download names its source `source` and keeps no push field; a push no download's."""
    download = transfer_from_json({**OLD_DOWNLOAD})
    push = transfer_from_json({**OLD_ARTIFACT_PUSH})
    down_doc, push_doc = download.to_json(), push.to_json()
    shared = {"id", "kind", "state", "error", "result", "plain_http", "chunk_size", "parallel",
              "created", "created_iso"}  # fmt: skip
    assert set(down_doc) == shared | {
        "source", "destination", "platform", "overwrite", "parts", "completed"
    }  # fmt: skip
    assert set(push_doc) == shared | {
        "target", "sources", "blobs", "manifests", "artifact_type", "mount_from", "annotations"
    }  # fmt: skip
    assert down_doc["source"] == OLD_DOWNLOAD["target"] and down_doc["kind"] == "download"


def test_an_entry_of_a_kind_hoist_does_not_know_is_a_journal_error(tmp_path: Path) -> None:
    doc = {**OLD_ARTIFACT_PUSH, "kind": "mirror"}
    journal = journal_with(tmp_path, doc)
    with pytest.raises(JournalError) as caught:
        load_transfer(journal, doc["id"])
    assert str(journal.path(doc["id"])) in caught.value.message
    assert "'mirror'" in caught.value.message


def test_a_download_entry_without_its_folder_is_a_journal_error(tmp_path: Path) -> None:
    doc = {k: v for k, v in OLD_DOWNLOAD.items() if k != "destination"}
    journal = journal_with(tmp_path, doc)
    with pytest.raises(JournalError, match="'destination' is missing"):
        load_transfer(journal, doc["id"])


def test_the_queue_item_counts_a_push_s_blobs_and_a_download_s_parts() -> None:
    """One queue holds both; each is counted by what it moves."""
    push = transfer_from_json({**OLD_ARTIFACT_PUSH})
    download = transfer_from_json({**OLD_DOWNLOAD})
    assert isinstance(push, Push) and isinstance(download, Download)
    push_item, download_item = TransferItem(push), TransferItem(download)
    assert (push_item.total, push_item.acknowledged, push_item.sent) == (3000, 1024, 1024)
    assert (download_item.total, download_item.acknowledged) == (3500, 1500)
    assert download_item.sent == 1500
    push.state = download.state = TransferState.DONE
    push.blobs[0].state = BlobState.EXISTS
    assert push_item.status_text().startswith("done; 1 of 1")
    assert download_item.status_text() == "done"


def test_each_type_says_where_its_bytes_come_from_and_go() -> None:
    """What the window's columns and "Copy reference" read, without asking the type."""
    push = transfer_from_json({**OLD_ARTIFACT_PUSH})
    download = transfer_from_json({**OLD_DOWNLOAD})
    assert (push.comes_from, push.goes_to) == ("/data/model.bin", "localhost:5000/models/llm:v1")
    assert push.pinned_reference == push.target  # not pushed yet: no digest to pin it by
    push.result = DIGEST
    assert str(push.pinned_reference) == f"localhost:5000/models/llm:v1@{DIGEST}"
    assert (download.comes_from, download.goes_to) == (
        f"localhost:5000/models/llm:v1@{DIGEST}", "/home/me/models"
    )  # fmt: skip
    download.result = "sha256:" + "cd" * 32  # the manifest it got: its source stays pinned
    assert download.pinned_reference == download.source
