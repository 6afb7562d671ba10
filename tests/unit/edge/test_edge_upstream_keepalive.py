"""UpstreamPool keep-alive: answers on one pooled connection stay in step, timeouts hold."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from latchkey.edge.upstream import UpstreamPool, UpstreamTimeout

HEAD = b"HEAD /o HTTP/1.1\r\nHost: up\r\n\r\n"
GET = b"GET /o HTTP/1.1\r\nHost: up\r\n\r\n"


async def head_then_get() -> tuple[list[tuple[int, bytes]], int]:
    """A HEAD answer names a length but has no body: the next answer on the same connection
    must not be taken for that body."""
    accepted = 0
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                if head.startswith(b"HEAD"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the pool closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(ssl.create_default_context(), response_timeout=5)
    answers = []
    try:
        for data, head in ((HEAD, True), (GET, False), (HEAD, True), (GET, False)):
            answer = await pool.exchange("127.0.0.1", port, False, data, head_request=head)
            assert not hasattr(answer, "rest")
            answers.append((answer.status, getattr(answer, "body", b"")))
    finally:
        pool.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        server.close()
        await server.wait_closed()
    return answers, accepted


def test_a_head_answer_does_not_desync_the_next_answer() -> None:
    answers, accepted = asyncio.run(head_then_get())
    assert answers == [(200, b""), (200, b"hello"), (200, b""), (200, b"hello")]
    assert accepted == 1  # all four on one kept-alive connection


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
