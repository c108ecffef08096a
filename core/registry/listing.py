"""Lists of what a registry holds: repositories (`_catalog`) and a repository's tags.

Lists come page by page as async iterators, so a browser shows the first page of a catalog
of thousands while the rest is still on its way. Pages follow the registry's own
`Link: <...>; rel="next"` header, resolved against the request URL and never rebuilt (some
cursors are opaque), and only on the registry's own host.

Registry behaviours handled here, each named with the registry that shows it:
- distribution 2.8 pages `_catalog` with a relative Link (`</v2/_catalog?last=b&n=2>`, `last`
  percent-encoded), pages by 100 when `n` is absent, answers `n` above `catalog.maxentries`
  (1000 by default) with 400 PAGINATION_NUMBER_INVALID and `n=0` with an empty list, and
  ignores `n` and `last` on `tags/list` (all tags in one answer, unsorted, no Link).
- Docker Hub and GHCR refuse `_catalog` (401/403/404): that is `CatalogUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import httpx

from hoist.core.errors import CatalogUnavailable, RegistryError
from hoist.core.registry.client import RegistryClient, next_link

#: A registry sending this many empty pages in a row, each with a new Link, is looping.
MAX_EMPTY_PAGES = 50
#: A next-page link longer than this is a runaway cursor (real ones are a name or a token).
MAX_NEXT_LINK = 4096


@dataclass(frozen=True)
class CatalogPage:
    """One page of repository names. `more` says whether another page follows (`next_url`)."""

    items: tuple[str, ...]
    more: bool
    next_url: str | None


@dataclass(frozen=True)
class TagPage:
    """One page of a repository's tags, in the order the registry gave them."""

    repository: str
    items: tuple[str, ...]
    more: bool
    next_url: str | None


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    def key(url: httpx.URL) -> tuple[str, str, int]:
        return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)

    return key(a) == key(b)


async def _link_pages(
    client: RegistryClient, path: str, key: str, *, page_size: int, what: str
) -> AsyncGenerator[tuple[list[str], httpx.URL | None], None]:
    """Yield (items, next URL) for each page of a list, fetching a page only when asked.

    A `n` the registry finds too large (distribution: more than `catalog.maxentries`, ECR: over
    1000) is dropped once, letting the registry pick its own page size.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")  # distribution answers n=0 with []
    url: str | httpx.URL = f"{path}?n={page_size}"
    seen: set[str] = set()
    listed: set[str] = set()
    empty_run = 0
    first = True
    while True:
        try:
            doc, response = await client.get_json(url, what=what)
        except RegistryError as exc:
            if first and exc.status == 400 and exc.has_code("PAGINATION_NUMBER_INVALID"):
                url, first = path, False
                continue
            raise
        first = False
        items = _string_list(doc, key, what)
        request_url = response.request.url
        seen.add(str(request_url))
        broken = ""
        try:
            following = next_link(response.headers.get("Link"), request_url)
        except httpx.InvalidURL:
            following, broken = None, "a next-page link that is not a URL"
        if following is not None and len(str(following)) > MAX_NEXT_LINK:
            broken = f"a next-page link longer than {MAX_NEXT_LINK} characters"
        elif following is not None and items and listed.issuperset(items):
            broken = "a new next-page link with a page of names it had already listed"
        listed.update(items)
        if broken:
            raise RegistryError(
                f"{what}: the registry sent {broken}",
                status=response.status_code,
                hint="The registry's paging is broken (a runaway cursor); the list is incomplete",
            )
        if following is not None:
            if not same_origin(following, request_url):
                raise RegistryError(
                    f"{what}: the registry's next page points at another host ({following.host})",
                    status=response.status_code,
                    hint="Hoist only follows pages on the registry's own host",
                )
            if str(following) in seen:
                raise RegistryError(
                    f"{what}: the registry's next-page link leads back to a page already read",
                    status=response.status_code,
                    hint="The registry's paging is broken (a repeated cursor); the list is "
                    "incomplete",
                )
            empty_run = 0 if items else empty_run + 1
            if empty_run >= MAX_EMPTY_PAGES:
                raise RegistryError(
                    f"{what}: the registry sent {empty_run} empty pages in a row",
                    status=response.status_code,
                    hint="The registry's paging is broken; the list is incomplete",
                )
        yield items, following
        if following is None:
            return
        url = following


def _string_list(doc: object, key: str, what: str) -> list[str]:
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: the registry's answer is not a JSON object", status=200)
    items = doc.get(key)
    if items is None:  # distribution sends `"tags": null` for a repository without tags
        return []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise RegistryError(f"{what}: the registry's list of {key} is malformed", status=200)
    return items


async def catalog_pages(client: RegistryClient, page_size: int = 100) -> AsyncIterator[CatalogPage]:
    """The registry's repositories, one page at a time (`GET /v2/_catalog?n=`).

    Raises:
        CatalogUnavailable: the registry refuses to list (401/403/404, or UNSUPPORTED).
    """
    pages = _link_pages(client, "/v2/_catalog", "repositories", page_size=page_size, what="catalog")
    try:
        while True:
            try:
                items, following = await anext(pages)
            except StopAsyncIteration:
                return
            except RegistryError as exc:
                if exc.status in (401, 403, 404, 405) or exc.has_code("UNSUPPORTED"):
                    hint = ""
                    if exc.status == 401 and client.credentials is None:
                        hint = (
                            "This registry does not list its repositories to anonymous users: "
                            "log in, or type a repository name instead"
                        )
                    raise CatalogUnavailable(
                        f"{client.host} does not list its repositories ({exc.message})",
                        status=exc.status,
                        hint=hint,
                    ) from exc
                raise
            yield CatalogPage(tuple(items), following is not None, _str(following))
    finally:
        await pages.aclose()


async def tag_pages(
    client: RegistryClient, repository: str, page_size: int = 100
) -> AsyncIterator[TagPage]:
    """A repository's tags, one page at a time (`GET /v2/<name>/tags/list?n=`).

    distribution 2.8 ignores `n` and sends every tag in one page; others follow the Link.
    """
    pages = _link_pages(
        client, f"/v2/{repository}/tags/list", "tags", page_size=page_size, what="list tags"
    )
    try:
        async for items, following in pages:
            yield TagPage(repository, tuple(items), following is not None, _str(following))
    finally:
        await pages.aclose()


async def all_tags(client: RegistryClient, repository: str, page_size: int = 1000) -> list[str]:
    """Every tag of a repository (for helpers that need the whole list)."""
    out: list[str] = []
    async for page in tag_pages(client, repository, page_size):
        out.extend(page.items)
    return out


def _str(url: httpx.URL | None) -> str | None:
    return None if url is None else str(url)


__all__ = ["CatalogPage", "TagPage", "all_tags", "catalog_pages", "same_origin", "tag_pages"]
