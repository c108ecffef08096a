"""Image references, parsed per the distribution reference grammar.

`host[:port]/repository[:tag][@algorithm:hex]`. As in docker, the first path component is a
registry host only when it holds a `.` or a `:`, or is `localhost` (or has upper-case letters);
otherwise the reference names Docker Hub, and a one-component name gets `library/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hoist.core.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?\Z"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}\Z")
NAME_TOTAL_LENGTH_MAX = 255


@dataclass(frozen=True)
class Reference:
    """A parsed reference. `registry` is the host as written (`docker.io` for Docker Hub)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host that serves the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def manifest_ref(self) -> str:
        """What goes after `/manifests/`: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_loopback_host(host: str) -> bool:
    """True for registries on this machine (plain HTTP is tried for these, as docker does)."""
    # "[::1]:5000" → "::1"; "localhost:5000" → "localhost"
    bare = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    return bare in ("localhost", "::1") or bare.startswith("127.")


def split_registry(name: str) -> tuple[str, str]:
    """Split `name` into (registry, remainder) per docker's rule for the first component."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return DOCKER_HUB, name


def parse_registry(text: str) -> str:
    """A registry host (`ghcr.io`, `localhost:5000`), with a URL scheme or path tolerated."""
    host = text.strip()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    host = host.split("/", 1)[0]
    if host in ("index.docker.io", DOCKER_HUB_API):
        host = DOCKER_HUB
    if not host or not _DOMAIN.match(host):
        raise InvalidReference(f"{text!r} is not a registry host")
    return host


def parse_reference(text: str, *, default_tag: str | None = None) -> Reference:
    """Parse `text` into a Reference, raising InvalidReference with the reason."""
    original = text
    if not text or text != text.strip():
        raise InvalidReference(f"{original!r} is not a reference: it is empty or has spaces")
    if "://" in text:
        raise InvalidReference(f"{original!r} is not a reference: leave out the URL scheme")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"{original!r} has an invalid digest {digest!r}")
    tag: str | None = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(f"{original!r} has an invalid tag {tag!r}")
    registry, path = split_registry(text)
    if registry in ("index.docker.io", DOCKER_HUB_API):
        registry = DOCKER_HUB
    if not _DOMAIN.match(registry):
        raise InvalidReference(f"{original!r} has an invalid registry host {registry!r}")
    port = registry.rpartition("]")[2].rpartition(":")[2] if ":" in registry else ""
    if port and not 0 < int(port) < 65536:
        raise InvalidReference(f"{original!r} names port {port}: ports are 1 to 65535")
    if not path:
        raise InvalidReference(f"{original!r} names no repository")
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            raise InvalidReference(
                f"{original!r} has an invalid repository component {component!r} "
                "(lowercase letters, digits, and . _ - between them)"
            )
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"{original!r}: repository name longer than 255 characters")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, path, tag, digest)
