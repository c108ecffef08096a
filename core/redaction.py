"""Keep secrets that ride in URLs out of what Hoist writes down or shows.

Object storage and CDNs hand out pre-signed URLs (`?X-Amz-Signature=...`, `?sig=...`) as blob
redirect targets: whoever reads the query can fetch the blob. Hoist needs those URLs only for
the request itself, so every URL in a log line or message is written without its query.
"""

from __future__ import annotations

import logging
import re

#: A URL's query (up to whitespace, a quote or a closing bracket).
_QUERY = re.compile(r"""(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"'<>]*)\?[^\s"'<>)\]]*""")


def redact_urls(text: str) -> str:
    """`text` with the query of every URL in it replaced by `?…`."""
    return _QUERY.sub(r"\1?…", text)


class RedactingFormatter(logging.Formatter):
    """A log formatter that writes every line with URL queries redacted: the message (httpx
    logs each request's full URL at INFO) and any traceback below it alike."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))
