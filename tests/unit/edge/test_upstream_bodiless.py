"""UpstreamPool against a plain-TCP upstream on 127.0.0.1: answers that never have a body (204,
304, HEAD) keep the pooled connection without a length, a HEAD through ``request`` does not
wait for the body its head names, and forwardable interims reach ``on_interim``."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from latchkey.edge.upstream import OnInterim, UpstreamPool
from latchkey.http.h1 import Response

GET = b"GET /o HTTP/1.1\r\nHost: up\r\n\r\n"
HEAD = b"HEAD /o HTTP/1.1\r\nHost: up\r\n\r\n"

Answer = Callable[[bytes], bytes]  # request head -> what the upstream writes back


async def against(
    answer: Answer, requests: list[bytes], on_interim: OnInterim | None = None
) -> tuple[list[Response], int, float]:
    """Send ``requests`` one after another through one pool; the answers, the number of
    connections the upstream accepted and the seconds the whole took."""
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
                writer.write(answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the pool closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(ssl.create_default_context(), response_timeout=5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = []
    try:
        for data in requests:
            answers.append(
                await pool.request("127.0.0.1", port, False, data, on_interim=on_interim)
            )
    finally:
        took = loop.time() - started
        pool.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        server.close()
        await server.wait_closed()
    return answers, accepted, took


def test_two_204s_without_a_length_share_one_connection() -> None:
    answers, accepted, _ = asyncio.run(
        against(lambda head: b"HTTP/1.1 204 No Content\r\n\r\n", [GET, GET])
    )
    assert [(a.status, a.body, a.keep_alive) for a in answers] == [(204, b"", True)] * 2
    assert accepted == 1


def test_304_then_200_share_one_connection() -> None:
    replies = iter([b"HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])  # fmt: skip
    answers, accepted, _ = asyncio.run(against(lambda head: next(replies), [GET, GET]))
    assert [(a.status, a.body) for a in answers] == [(304, b""), (200, b"ok")]
    assert accepted == 1


def test_head_answers_without_a_length_share_one_connection() -> None:
    def answer(head: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    answers, accepted, _ = asyncio.run(against(answer, [HEAD, GET, HEAD, GET]))
    assert [(a.status, a.body) for a in answers] == [(200, b""), (200, b"hello")] * 2
    assert accepted == 1


def test_a_head_through_request_does_not_wait_for_the_named_body() -> None:
    def answer(head: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    answers, accepted, took = asyncio.run(against(answer, [HEAD, GET]))
    assert [(a.status, a.body) for a in answers] == [(200, b""), (200, b"hello")]
    assert answers[0].header("content-length") == "5"  # the length a GET would have had
    assert accepted == 1
    assert took < 2  # (the response timeout is 5 s)


def test_interims_reach_on_interim_and_the_answer_follows() -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    seen: list[Response] = []
    answers, accepted, _ = asyncio.run(
        against(lambda head: hints + final, [GET, GET], on_interim=seen.append)
    )
    assert [(a.status, a.body) for a in answers] == [(200, b"ok")] * 2
    assert [(r.status, r.header("link")) for r in seen] == [(103, "</s.css>; rel=preload")] * 2
    assert accepted == 1


def test_a_head_answer_does_not_desync_the_next_answer() -> None:
    """A HEAD answer names a length but has no body: the next answer on the same connection
    must not be taken for that body."""

    def answer(head: bytes) -> bytes:
        body = b"" if head.startswith(b"HEAD") else b"hello"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body

    answers, accepted, _ = asyncio.run(against(answer, [HEAD, GET, HEAD, GET]))
    assert [(a.status, a.body) for a in answers] == [(200, b""), (200, b"hello")] * 2
    assert accepted == 1  # all four on one kept-alive connection
