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


class RedactingFilter(logging.Filter):
    """A logging filter that writes every record's message with URL queries redacted
    (httpx logs each request's full URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
