"""What the sender reads of an endpoint's answer: never more than its cap, however much is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from service.outbound.sender import read_capped


class Endless(httpx.AsyncByteStream):
    """An answer that never ends, counting what was taken from it."""

    def __init__(self) -> None:
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.taken += 4096
            yield b"x" * 4096


async def test_an_endless_answer_is_read_only_up_to_the_cap() -> None:
    stream = Endless()
    response = httpx.Response(500, stream=stream)
    received = await read_capped(response, 10_000)
    assert received == b"x" * 10_000
    assert stream.taken <= 12_288  # three chunks, then it stopped asking


class Chunks(httpx.AsyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def test_a_short_answer_is_read_whole() -> None:
    response = httpx.Response(500, stream=Chunks(b"down for ", b"maintenance"))
    assert await read_capped(response, 10_000) == b"down for maintenance"
