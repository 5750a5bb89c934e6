"""A minimal server-sent events client on plain asyncio streams: one HTTP/1.1 GET per connection.

Cheap on purpose, so that a benchmark's client costs little next to the server it measures (and no
more than it must on a machine whose CPUs it shares with that server): no HTTP library, no pool.

- ``open_stream`` connects (optionally from a given local address), sends the GET and reads the response
  head, checking for a 200 ``text/event-stream``; the body is then read straight from the
  ``StreamReader``.
- ``SseReader`` decodes a body (chunked or not) into messages, for callers that need the data (the queue
  benchmark reads each ``event: ticket``'s Ticket JSON).
- ``MessageScanner`` does not decode anything: it finds whole messages with a given ``event:`` line in
  the raw bytes, chunk framing and all, and hands each one over as bytes. That is enough to know that a
  message arrived and to look for a marker in it, and it is what the subscribers client uses for
  10,000 streams. (uvicorn writes each SSE message as one HTTP chunk, so the framing's size lines fall
  between messages, never inside one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

HEAD_LIMIT = 64 * 1024
MESSAGE_END = b"\r\n\r\n"  # Litestar ends every line with CRLF, so a message ends with an empty line


class SseError(RuntimeError):
    """The stream could not be opened, or the server did not answer as an SSE endpoint does."""


@dataclass
class Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    chunked: bool

    def close(self) -> None:
        self.writer.close()


async def open_stream(
    host: str,
    port: int,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    local_host: str | None = None,
    last_event_id: int | None = None,
) -> Stream:
    """GET ``path`` as an ``EventSource`` would; raises ``SseError`` unless it answers 200 with a
    ``text/event-stream``. ``local_host`` binds the client's end to that address (port chosen by the
    kernel), to spread many connections over several source addresses."""
    local = (local_host, 0) if local_host is not None else None
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=local, limit=HEAD_LIMIT)
    except OSError as exc:
        raise SseError(f"connect to {host}:{port} from {local_host or 'any'}: {exc!r}") from exc
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: text/event-stream",
        "Cache-Control: no-cache",
    ]
    if last_event_id is not None:
        lines.append(f"Last-Event-ID: {last_event_id}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await reader.readuntil(b"\r\n\r\n")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        writer.close()
        raise SseError(f"GET {path}: no response head: {exc!r}") from exc
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        body = b""
        if "content-length" in fields:
            with contextlib.suppress(OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
                body = await asyncio.wait_for(reader.readexactly(int(fields["content-length"])), 2)
        writer.close()
        raise SseError(f"GET {path}: {status_line} {body[:500]!r}")
    if not fields.get("content-type", "").startswith("text/event-stream"):
        writer.close()
        raise SseError(f"GET {path}: content-type {fields.get('content-type')!r}, not text/event-stream")
    return Stream(reader, writer, chunked=fields.get("transfer-encoding", "").lower() == "chunked")


@dataclass
class SseMessage:
    event: str | None = None
    id: str | None = None
    data: str | None = None
    received_at: float = 0.0
    """``time.perf_counter()`` right after the read that completed the message."""


class SseReader:
    """Messages of one stream, decoded (chunked transfer coding, lines, fields); comments are skipped.
    Lines may end with CRLF or LF (a lone CR, which the SSE format also allows, is not handled)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._buffer = b""
        self._cr = b""  # a CR that ended the last piece: its LF may start the next one
        self._ended = False
        self._read_at = 0.0

    async def next(self) -> SseMessage | None:
        """The next message with an event or data; None when the server ended the stream."""
        while True:
            message = self._take()
            if message is not None:
                return message
            if self._ended:
                return None
            piece = await self._read_body()
            self._read_at = time.perf_counter()
            if not piece:
                self._ended = True
            piece, self._cr = self._cr + piece, b""
            if piece.endswith(b"\r"):
                piece, self._cr = piece[:-1], b"\r"
            self._buffer += piece.replace(b"\r\n", b"\n")

    def _take(self) -> SseMessage | None:
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return None
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            message = _parse(block)
            if message is not None:
                message.received_at = self._read_at
                return message

    async def _read_body(self) -> bytes:
        reader = self.stream.reader
        try:
            if not self.stream.chunked:
                return await reader.read(HEAD_LIMIT)
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                return b""
            piece = await reader.readexactly(size)
            await reader.readexactly(2)  # the CRLF after the chunk
            return piece
        except (asyncio.IncompleteReadError, ConnectionError):
            return b""


def _parse(block: bytes) -> SseMessage | None:
    message = SseMessage()
    seen = False
    for raw in block.split(b"\n"):
        line = raw.decode()
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            message.data = value if message.data is None else f"{message.data}\n{value}"
            seen = True
        elif name == "event":
            message.event = value
            seen = True
        elif name == "id":
            message.id = value
    return message if seen else None


class MessageScanner:
    """Whole messages carrying ``event: <name>``, found in the raw bytes of a stream as they arrive.

    ``feed`` takes what one read returned and gives back each complete message with that event line
    (from the event line to the empty line that ends it); a message cut by a read boundary is kept and
    completed by the next read. Everything else (other events, comments, chunk framing) is skipped
    without being decoded.
    """

    __slots__ = ("_carry", "_marker")

    def __init__(self, event: str) -> None:
        self._marker = f"event: {event}\r\n".encode()
        self._carry = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._carry + data if self._carry else data
        found: list[bytes] = []
        start = 0
        while True:
            at = buffer.find(self._marker, start)
            if at < 0:
                # Keep a tail that may be the start of a marker cut in two.
                keep = len(self._marker) - 1
                self._carry = buffer[-keep:] if len(buffer) > keep else buffer
                return found
            end = buffer.find(MESSAGE_END, at)
            if end < 0:
                self._carry = buffer[at:]
                return found
            found.append(buffer[at:end])
            start = end + len(MESSAGE_END)
