"""UpstreamPool sends a request again only when the upstream closed a pooled connection before
answering at all: a reset after part of the answer came must not replay the request (the
server acted on it; a CreateKey would make two keys)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct

import pytest

from latchkey.edge.upstream import UpstreamError, UpstreamPool

GET = b"POST /o HTTP/1.1\r\nHost: up\r\nContent-Length: 0\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def second_answer_breaks(partial: bytes) -> tuple[int, str]:
    """The first request is answered in full; the second gets ``partial`` and then a reset.
    Returns the requests the upstream saw and the error the second call raised."""
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                seen += 1
                if seen == 1:
                    writer.write(OK)
                    await writer.drain()
                    continue
                writer.write(partial)
                await writer.drain()
                await asyncio.sleep(0.05)  # the partial answer is out; now reset
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(ssl.create_default_context(), response_timeout=5)
    try:
        first = await pool.request("127.0.0.1", port, False, GET)
        assert (first.status, first.body) == (200, b"ok")
        with pytest.raises(UpstreamError) as failed:
            await pool.request("127.0.0.1", port, False, GET)  # on the pooled connection
        await asyncio.sleep(0.1)  # a replay, if one were sent, has arrived by now
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
    return seen, str(failed.value)


@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\nContent-Le", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
    ids=["part of the head", "part of the body"],
)
def test_a_reset_during_the_answer_is_not_replayed(partial: bytes) -> None:
    seen, error = asyncio.run(second_answer_breaks(partial))
    assert seen == 2  # not 3
    assert "reset" in error or "closed" in error
