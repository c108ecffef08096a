"""The argparse tree of `hoist`: every command, its flags, and the limits a flag's value is
checked against before anything starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from hoist.core import __version__
from hoist.core.errors import InvalidSize
from hoist.core.oci.manifest import DEFAULT_ARTIFACT_TYPE
from hoist.core.transfer.push import DEFAULT_BLOBS_AT_ONCE
from hoist.core.transfer.upload import DEFAULT_CHUNK
from hoist.core.units import GiB, KiB, MiB, format_size, parse_rate, parse_size

#: Limits of the size and count flags, checked before anything starts.
MIN_CHUNK = (
    64 * KiB
)  # registries need more than 1 byte per PATCH; tiny chunks cost a round trip each
MAX_CHUNK = 4 * GiB
MIN_PART = 1 * MiB
MAX_PART = 1024 * GiB
MAX_PARALLEL = 32
MAX_PAGE_SIZE = 10_000


def _size_flag(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a size between `low` and `high`, or a usage error naming them."""

    def parse(text: str) -> int:
        try:
            value = parse_size(text)
        except InvalidSize:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a size; write bytes or a unit, e.g. 16MiB, 1GiB"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: use {format_size(low)} to {format_size(high)}"
            )
        return value

    return parse


def _count_flag(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number between `low` and `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: use {low} to {high}")
        return value

    return parse


def _seconds_flag(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is out of range: use 0 or more seconds")
    return value


def _rate_flag(text: str) -> str:
    """An argparse type: a rate (`20MiB/s`, 0 for none), kept as written."""
    try:
        parse_rate(text)
    except InvalidSize:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate; write e.g. 20MiB/s, or 0 for no limit"
        ) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hoist", description="Push large files and container images to OCI registries."
    )
    parser.add_argument("--version", action="version", version=f"hoist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plain-http", action="store_true", help="use http:// (no TLS)")
        p.add_argument("-u", "--username", help="registry username (else keyring / docker config)")
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        p.add_argument(
            "--progress", choices=("auto", "bar", "plain", "json"), default="auto",
            help="progress on stderr: bar (terminal), plain lines, or JSON lines",
        )  # fmt: skip
        p.add_argument(
            "--chunk-size", type=_size_flag(MIN_CHUNK, MAX_CHUNK),
            help=f"bytes per PATCH, {format_size(MIN_CHUNK)} to {format_size(MAX_CHUNK)} "
            f"(default {format_size(DEFAULT_CHUNK)}, adaptive)",
        )  # fmt: skip
        p.add_argument(
            "--retry-for", type=_seconds_flag, default=600.0, metavar="SECONDS",
            help="give up after this long without progress (0: never; default 600)",
        )  # fmt: skip
        p.add_argument(
            "--limit-rate", metavar="RATE", type=_rate_flag,
            help="cap the upload rate, e.g. 20MiB/s (default: the registry's profile, or none)",
        )  # fmt: skip

    push = sub.add_parser(
        "push",
        help="push files or folders as an OCI artifact, or a container image",
        description="Push files/folders as an ORAS-compatible artifact, or an image source "
        "(OCI layout folder or tar, `docker save` tarball) as an image.",
    )
    push.add_argument("ref", metavar="REF")
    push.add_argument("paths", metavar="PATH", nargs="+")
    push.add_argument("--artifact-type", default=DEFAULT_ARTIFACT_TYPE)
    push.add_argument("--split", action="store_true", help="push large files as parts")
    push.add_argument(
        "--part-size", type=_size_flag(MIN_PART, MAX_PART), default=GiB,
        help="split part size, 1MiB to 1TiB (default 1GiB)",
    )  # fmt: skip
    push.add_argument(
        "--parallel", type=_count_flag(1, MAX_PARALLEL), default=0,
        help=f"blobs at once within this push (default: {DEFAULT_BLOBS_AT_ONCE})",
    )  # fmt: skip
    push.add_argument(
        "--pack", action="store_const", const="tar.gz",
        help="push each folder as one gzip tar (as `oras push` does) instead of as its files",
    )  # fmt: skip
    push.add_argument(  # an option string of its own: `--pack` alone keeps taking no value
        "--pack=tar", dest="pack", action="store_const", const="tar",
        help="push each folder as one uncompressed tar (`--pack=tar.gz` is `--pack`)",
    )  # fmt: skip
    push.add_argument(
        "--pack=tar.gz", dest="pack", action="store_const", const="tar.gz", help=argparse.SUPPRESS
    )  # fmt: skip
    push.add_argument("--as-files", action="store_true", help="push an image source as a file")
    push.add_argument("--platform", help="push one platform of a multi-arch image (linux/arm64)")
    push.add_argument("--image-tag", help="which image of a source holding several")
    push.add_argument(
        "--mount-from", action="append", default=[], metavar="REPO",
        help="mount blobs from this repository of the same registry when it has them",
    )  # fmt: skip
    common(push)

    resume = sub.add_parser("resume", help="resume a paused or interrupted transfer")
    resume.add_argument("id", nargs="?")
    resume.add_argument("--all", action="store_true")
    resume.add_argument(
        "--restart-changed", action="store_true",
        help="start again the blobs whose file changed since they began",
    )  # fmt: skip
    common(resume)

    cancel = sub.add_parser("cancel", help="cancel a transfer and forget it")
    cancel.add_argument("id")
    common(cancel)

    transfers = sub.add_parser("transfers", help="list transfers in the journal")
    transfers.add_argument("--json", action="store_true")

    profile = sub.add_parser("profile", help="show or reset what Hoist learned about registries")
    profile.add_argument("registry", nargs="?")
    profile.add_argument("--reset", action="store_true", help="forget it (all, or one registry)")
    profile.add_argument(
        "--limit-rate", metavar="RATE", type=_rate_flag, help="default upload cap (0: none)"
    )

    login = sub.add_parser("login", help="check credentials and keep them in the keyring")
    login.add_argument("registry")
    login.add_argument("-u", "--username")
    login.add_argument("--password-stdin", action="store_true")
    login.add_argument("--plain-http", action="store_true")

    logout = sub.add_parser("logout", help="remove stored credentials")
    logout.add_argument("registry")

    def access(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plain-http", action="store_true", help="use http:// (no TLS)")
        p.add_argument("-u", "--username")
        p.add_argument("--password-stdin", action="store_true")

    catalog = sub.add_parser("catalog", help="list a registry's repositories, one per line")
    catalog.add_argument("registry")
    catalog.add_argument("--page-size", type=_count_flag(1, MAX_PAGE_SIZE), default=100)
    access(catalog)

    tags = sub.add_parser("tags", help="list a repository's tags, one per line")
    tags.add_argument("repository", metavar="REPO")
    tags.add_argument("--page-size", type=_count_flag(1, MAX_PAGE_SIZE), default=100)
    access(tags)

    inspect = sub.add_parser("inspect", help="describe a manifest as JSON")
    inspect.add_argument("ref", metavar="REF")
    access(inspect)

    pull = sub.add_parser("pull", help="download an artifact's files (resumable, verified)")
    pull.add_argument("ref", metavar="REF")
    pull.add_argument("-o", "--output", default=".", help="folder to write into (default: .)")
    pull.add_argument("--platform", help="which platform of a multi-arch image")
    pull.add_argument(
        "--force", "--overwrite", dest="overwrite", action="store_true",
        help="replace files and folders already there that differ (default: refuse)",
    )  # fmt: skip
    pull.add_argument(
        "--untitled", action="store_true",
        help="also write layers without a file name, as sha256-HEX files",
    )  # fmt: skip
    pull.add_argument("--progress", choices=("auto", "bar", "plain", "json"), default="auto")
    access(pull)

    delete = sub.add_parser("delete", help="delete a tag's manifest (where the registry allows)")
    delete.add_argument("ref", metavar="REF")
    delete.add_argument("--yes", action="store_true", help="even when other tags share it")
    access(delete)
    return parser
