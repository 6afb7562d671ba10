"""latchkey.http.conn.Conn: reads, the one deadline timer per connection, half-close, drain."""

from __future__ import annotations

import asyncio

import pytest

from latchkey.http.conn import Conn, connect


async def shut(server: asyncio.Server, *conns: Conn) -> None:
    for conn in conns:
        conn.close()
    for conn in conns:
        await asyncio.wait_for(conn.wait_closed(), 5)
    server.close()
    await server.wait_closed()


async def pair() -> tuple[Conn, Conn, asyncio.Server]:
    accepted: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(accepted.set_result), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = await connect("127.0.0.1", port)
    return client, await asyncio.wait_for(accepted, 5), server


async def deadlines() -> list[object]:
    client, served, server = await pair()
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    try:
        loop.call_later(0.05, client.write, b"first")
        seen.append(await served.read(100, 0.5))  # arms the timer for +0.5 s
        # a later deadline than the armed timer: noticed when that timer fires, then re-armed
        loop.call_later(0.7, client.write, b"late")
        seen.append(await served.read(100, 1.5))
        started = loop.time()
        with pytest.raises(TimeoutError):
            await served.read(100, 0.1)  # an earlier deadline: the timer is armed for it
        seen.append(0.09 <= loop.time() - started < 1.0)  # the 0.1 s deadline, not the 1.5 s
        client.write(b"x" * 10)
        seen.append(await served.read(4))  # at most n, the rest stays buffered
        seen.append(await served.read(100, 0.01))  # buffered: no wait, no timeout
        client.write_eof()
        seen.append(await served.read(100, 1))  # the end of the stream
        served.write(b"after half-close")  # TCP: the answer may still go out
        seen.append(await client.read(100, 1))
    finally:
        await shut(server, client, served)
    return seen


def test_reads_deadlines_and_half_close() -> None:
    seen = asyncio.run(deadlines())
    assert seen == [b"first", b"late", True, b"xxxx", b"xxxxxx", b"", b"after half-close"]


async def two_reads() -> None:
    client, served, server = await pair()
    try:
        first = asyncio.ensure_future(served.read(10))
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError):
            await served.read(10)
        first.cancel()
    finally:
        await shut(server, client, served)


def test_one_read_at_a_time() -> None:
    asyncio.run(two_reads())


async def lost() -> None:
    client, served, server = await pair()
    try:
        client.close()
        assert await served.read(10, 1) == b""  # the end of the stream
        served.close()
        await asyncio.wait_for(served.wait_closed(), 5)
        assert served.must_drain()
        with pytest.raises(ConnectionResetError):
            await served.drain()
    finally:
        await shut(server, client, served)


def test_a_closed_peer_ends_reads_and_fails_drain() -> None:
    asyncio.run(lost())
