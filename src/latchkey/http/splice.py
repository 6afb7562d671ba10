"""Relay bytes both ways between two stream pairs until both sides are done."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

READ_CHUNK = 65536


class Source(Protocol):
    """What is read from: an ``asyncio.StreamReader`` or a ``latchkey.http.conn.Conn``."""

    async def read(self, n: int = -1) -> bytes: ...


class Sink(Protocol):
    """What is written to: an ``asyncio.StreamWriter`` or a ``latchkey.http.conn.Conn``."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...


async def _pipe(src: Source, dst: Sink) -> None:
    try:
        while data := await src.read(READ_CHUNK):
            dst.write(data)
            await dst.drain()
    finally:
        with contextlib.suppress(Exception):
            dst.write_eof()


async def splice(a: tuple[Source, Sink], b: tuple[Source, Sink]) -> None:
    """Copy a -> b and b -> a; half-closes are passed on. Closes ``b``'s writer at the end."""
    try:
        await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))
    finally:
        b[1].close()
