"""Which local process is on the other end of a loopback TCP connection (Linux, /proc).

The kernel's socket table (``/proc/net/tcp``, ``/proc/net/tcp6``) maps the connection's
address pair to a socket inode and the owning uid; a scan of ``/proc/<pid>/fd`` finds the
process holding that inode. The parsers are pure functions; ``find_peer_process`` does the
reading. Everything here is evidence for workload identification, gathered once per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import pwd
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
ESTABLISHED = "01"


@dataclass(frozen=True, slots=True)
class SocketEntry:
    local: tuple[str, int]
    remote: tuple[str, int]
    state: str
    uid: int
    inode: int


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    uid: int
    exe: str  # resolved path of the executable, "" when unreadable
    cmdline: tuple[str, ...] = field(default=())

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def exe_sha256(self, proc: Path = PROC) -> str | None:
        """The SHA-256 of the running executable (read through /proc, so a replaced file
        on disk does not fool it)."""
        digest = hashlib.sha256()
        try:
            with open(proc / str(self.pid) / "exe", "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            return None
        return digest.hexdigest()


def decode_address(text: str) -> tuple[str, int]:
    """``0100007F:1F40`` -> ``("127.0.0.1", 8000)``; IPv6 as the kernel prints it."""
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    if len(raw) == 4:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(raw[::-1])
    elif len(raw) == 16:
        # four 32-bit words, each in host (little-endian) order
        words = struct.unpack("<4I", raw)
        ip = ipaddress.IPv6Address(struct.pack(">4I", *words))
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    else:
        raise ValueError(f"bad address {text!r}")
    return ip.compressed, int(port_hex, 16)


def parse_socket_table(text: str) -> Iterator[SocketEntry]:
    """Entries of a ``/proc/net/tcp``-format table (the header line is skipped)."""
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10:
            continue
        try:
            yield SocketEntry(
                local=decode_address(parts[1]),
                remote=decode_address(parts[2]),
                state=parts[3],
                uid=int(parts[7]),
                inode=int(parts[9]),
            )
        except ValueError:
            continue


def _normal(address: tuple[str, int]) -> tuple[str, int]:
    ip = ipaddress.ip_address(address[0].split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.compressed, address[1]


def find_socket(
    entries: Iterable[SocketEntry], local: tuple[str, int], remote: tuple[str, int]
) -> SocketEntry | None:
    """The established socket whose own address is ``local`` and peer is ``remote``."""
    want_local, want_remote = _normal(local), _normal(remote)
    for entry in entries:
        if entry.state == ESTABLISHED and entry.local == want_local and entry.remote == want_remote:
            return entry
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def find_socket_owner(inode: int, proc: Path = PROC) -> int | None:
    """The pid holding socket ``inode`` open (the first found; forks may share it)."""
    target = f"socket:[{inode}]"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            with os.scandir(entry / "fd") as fds:
                for fd in fds:
                    try:
                        if os.readlink(fd.path) == target:
                            return int(entry.name)
                    except OSError:
                        continue
        except OSError:
            continue
    return None


def describe_process(pid: int, uid: int, proc: Path = PROC) -> ProcessInfo:
    base = proc / str(pid)
    try:
        exe = os.readlink(base / "exe")
    except OSError:
        exe = ""
    try:
        raw = (base / "cmdline").read_bytes()
    except OSError:
        raw = b""
    cmdline = tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return ProcessInfo(pid=pid, uid=uid, exe=exe, cmdline=cmdline)


def find_peer_process(
    sock: socket.socket | None = None,
    *,
    ours: tuple[str, int] | None = None,
    peer: tuple[str, int] | None = None,
    proc: Path = PROC,
) -> ProcessInfo | None:
    """The process on the other end of our accepted connection (loopback peers only).

    Give the accepted socket, or our (local) and the peer's address. ``None`` when the peer
    is not local or cannot be found (another network namespace, /proc hidden).
    """
    if sock is not None:
        ours = sock.getsockname()[:2]
        peer = sock.getpeername()[:2]
    if ours is None or peer is None:
        raise ValueError("give a socket or both addresses")
    # The peer's socket has the peer's address as its local side and ours as its remote.
    table = (
        _read(proc / "net" / "tcp")
        + "\n"
        + "\n".join(_read(proc / "net" / "tcp6").splitlines()[1:])
    )
    entry = find_socket(parse_socket_table(table), peer, ours)
    if entry is None:
        return None
    pid = find_socket_owner(entry.inode, proc)
    if pid is None:
        return None
    return describe_process(pid, entry.uid, proc)


async def caller_hostname(address: str, within: float = 1.0) -> str | None:
    """This machine's name for a loopback caller; else the reverse lookup, bounded in time."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if ip.is_loopback or (isinstance(ip, ipaddress.IPv6Address) and
                          ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback):  # fmt: skip
        return socket.gethostname()
    loop = asyncio.get_running_loop()
    try:
        host, _port = await asyncio.wait_for(
            loop.getnameinfo((str(ip), 0), socket.NI_NAMEREQD), within
        )
    except (OSError, TimeoutError):
        return None
    return str(host)
