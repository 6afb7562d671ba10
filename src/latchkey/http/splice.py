"""Relay bytes both ways between two stream pairs until both sides are done."""

from __future__ import annotations

import asyncio
import contextlib

READ_CHUNK = 65536


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(READ_CHUNK):
            dst.write(data)
            await dst.drain()
    finally:
        with contextlib.suppress(Exception):
            dst.write_eof()


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy a -> b and b -> a; half-closes are passed on. Closes ``b``'s writer at the end."""
    try:
        await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))
    finally:
        b[1].close()
