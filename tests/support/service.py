"""What the test servers (registry, token server, fault proxy, secret service) share: a
`with` block starts one and closes it, whatever the block raised, and a fixture's factory
starts as many as a test asks for and closes them all at teardown."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar


class Service:
    """A server a test starts and closes; subclasses give `start` and `close`."""

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()  # what a half-done start left (a folder, a process) goes too
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


S = TypeVar("S", bound=Service)


@contextlib.contextmanager
def service_factory(build: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """A factory `make(*args, **options)` → `build(...)` started; every one it built is
    closed, the last first, when the block ends (also those whose start failed)."""
    built: list[S] = []

    def make(*args: Any, **options: Any) -> S:
        service = build(*args, **options)
        built.append(service)
        return service.start()

    try:
        yield make
    finally:
        for service in reversed(built):
            service.close()
