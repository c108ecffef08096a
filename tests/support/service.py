"""What the test servers (registry, token server, fault proxy, secret service) share: a
`with` block starts one and closes it, whatever the block raised."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Service:
    """A server a test starts and closes; subclasses give `start` and `close`."""

    def start(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
