"""UpstreamPool: an upstream that does not answer in time. (Answers on one pooled connection
staying in step: test_upstream_bodiless.py.)"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from latchkey.edge.upstream import UpstreamPool, UpstreamTimeout

GET = b"GET /o HTTP/1.1\r\nHost: up\r\n\r\n"


async def silent_upstream(seconds: float) -> float:
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await reader.read()  # never answers, until the pool closes the connection
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(ssl.create_default_context(), response_timeout=seconds)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(UpstreamTimeout):
            await pool.exchange("127.0.0.1", port, False, GET)
    finally:
        pool.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        server.close()
        await server.wait_closed()
    return loop.time() - started


def test_no_answer_within_the_response_timeout_is_an_upstream_timeout() -> None:
    took = asyncio.run(silent_upstream(0.2))
    assert 0.15 <= took < 2
