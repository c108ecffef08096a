"""Sizes and rates as people write them: `16MiB`, `1GiB`, `500KiB/s`, or plain bytes."""

from __future__ import annotations

import re

from hoist.core.errors import InvalidSize

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}  # fmt: skip
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*\Z")

KiB = 1024
MiB = 1024**2
GiB = 1024**3


def parse_size(text: str | int) -> int:
    """Bytes from `16MiB`, `1.5GiB`, `500k` or `1048576`. Raises InvalidSize."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise InvalidSize(f"{text!r} is not a size")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_rate(text: str) -> int:
    """Bytes per second from `20MiB/s`, `500KiB/s` (the `/s` is optional); 0 means no limit."""
    body = text.strip()
    if body.lower().endswith("/s"):
        body = body[:-2]
    return parse_size(body)


def format_size(n: float) -> str:
    """`1.5 GiB`: binary units, three significant figures."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.3g} {unit}" if n < 100 else f"{n:.0f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_rate(bps: float) -> str:
    return f"{format_size(bps)}/s"


def format_duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 20s`, `8s`; `—` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "—"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"
