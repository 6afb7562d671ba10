"""UpstreamPool against a plain-TCP upstream that sends an interim 1xx before its answer."""

from __future__ import annotations

import asyncio
import ssl

from latchkey.edge.upstream import UpstreamPool
from latchkey.http.h1 import Response

FIRST = b"PUT /o HTTP/1.1\r\nHost: up\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"
SECOND = b"GET /o HTTP/1.1\r\nHost: up\r\n\r\n"
ANSWERS = [
    [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    [b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\ntwo"],
]


async def exchange_twice() -> list[Response]:
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        for parts in ANSWERS:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"Content-Length: 1" in head:
                await reader.readexactly(1)
            for part in parts:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.02)  # the interim arrives in a read of its own
        await reader.read()  # until the pool closes the connection
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(ssl.create_default_context(), response_timeout=5)
    try:
        first = await pool.request("127.0.0.1", port, False, FIRST)
        second = await pool.request("127.0.0.1", port, False, SECOND)
    finally:
        pool.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        server.close()
        await server.wait_closed()
    return [first, second]


def test_interim_responses_are_skipped_and_do_not_desync_the_pool() -> None:
    first, second = asyncio.run(exchange_twice())
    assert (first.status, first.body) == (200, b"ok")
    assert (second.status, second.body) == (201, b"two")
