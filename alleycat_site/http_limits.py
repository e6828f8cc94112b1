"""An over-long request line gets an answer from daphne: 414 (or 431 for a header line), not a dropped connection.

daphne parses HTTP with Twisted's ``HTTPChannel``, a ``LineReceiver`` that allows 16,384 bytes per line; past
that, ``LineReceiver.lineLengthExceeded`` closes the connection without a word, so a client with a long URL
(an API client passing a few KB of cursor, schemathesis) sees the connection reset instead of an HTTP error.
``install()`` gives ``HTTPChannel`` the answer RFC 9110 names for it. Lines up to the limit reach Django,
which answers 400 for a cursor or limit out of range.
"""

from __future__ import annotations

import orjson

_MESSAGES = {
    b"414 URI Too Long": ("uri_too_long", "The request line is too long."),
    b"431 Request Header Fields Too Large": ("header_too_large", "A request header is too long."),
}


def _line_length_exceeded(self, line: bytes) -> None:
    # Nothing of this request counted yet: the line is the request line (method, URL, version).
    status = b"414 URI Too Long" if self._receivedHeaderSize == 0 else b"431 Request Header Fields Too Large"
    code, message = _MESSAGES[status]
    body = orjson.dumps({"error": {"code": code, "message": message}})
    self.transport.write(
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    self.transport.loseConnection()


def install() -> None:
    """Patch Twisted's HTTP channel in this process (daphne's); a no-op where Twisted is not used."""
    try:
        from twisted.web.http import HTTPChannel
    except ImportError:  # served by something other than daphne
        return
    if not hasattr(HTTPChannel, "_receivedHeaderSize"):  # a Twisted this was not written for: keep its behaviour
        return
    HTTPChannel.lineLengthExceeded = _line_length_exceeded
