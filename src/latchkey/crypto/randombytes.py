"""Random bytes from the OS CSPRNG, drawn in blocks rather than one system call per value.

``os.urandom`` releases the GIL for its system call. On a busy event loop that shares the
interpreter with a writer thread, each release can hand the GIL away for a whole switch
interval (5 ms), so three draws per KMS call (request id, event id, GCM nonce) cost far more
than the bytes. This module reads 4 KiB at a time and hands out slices.

The bytes are exactly ``os.urandom``'s, each handed out once: a lock makes the slicing
atomic across threads, and a fork empties the block in the child (``os.register_at_fork``),
so a child never repeats bytes its parent already used, or will use.
"""

from __future__ import annotations

import os
import threading

__all__ = ["token_bytes", "uuid4"]

_BLOCK = 4096
_lock = threading.Lock()
_block = b""
_offset = 0


def _forget() -> None:
    global _block, _offset, _lock
    _block, _offset = b"", 0
    _lock = threading.Lock()  # the parent may have held it while forking


os.register_at_fork(after_in_child=_forget)


def token_bytes(count: int) -> bytes:
    """``count`` bytes from the OS CSPRNG; values above the block size are drawn directly."""
    global _block, _offset
    if count > _BLOCK // 4:
        return os.urandom(count)
    with _lock:
        end = _offset + count
        if end > len(_block):
            _block, _offset, end = os.urandom(_BLOCK), 0, count
        value = _block[_offset:end]
        _offset = end
    return value


def uuid4() -> str:
    """A random (version 4, RFC 9562 variant) UUID as text, as ``str(uuid.uuid4())`` gives it."""
    raw = bytearray(token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
