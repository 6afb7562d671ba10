"""Which local process is on the other end of a loopback TCP connection (Linux, /proc).

The kernel's socket table (``/proc/net/tcp``, ``/proc/net/tcp6``) maps the connection's
address pair to a socket inode and the owning uid; a scan of ``/proc/<pid>/fd`` finds the
process holding that inode. The parsers are pure functions; ``find_peer_process`` does the
reading. Everything here is evidence for workload identification, gathered once per connection.
``find_tcp_socket`` asks the kernel about one address pair directly (``sock_diag`` netlink, as
``ss`` does: one lookup, not a scan of the whole table) and reads /proc only where it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import ipaddress
import os
import pwd
import socket
import struct
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
ESTABLISHED = "01"
# A socket that holds a connection, in any state but TIME_WAIT (06), CLOSE (07) and LISTEN (0A):
# one that has sent or received a FIN (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING) is still open.
OPEN_STATES = frozenset({"01", "02", "03", "04", "05", "08", "09", "0B", "0C"})
NETLINK_SOCK_DIAG = 4  # <linux/netlink.h>
SOCK_DIAG_BY_FAMILY = 20  # <linux/sock_diag.h>
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
INET_DIAG_NOCOOKIE = 0xFFFFFFFF


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


def normal_address(address: tuple[str, int]) -> tuple[str, int]:
    """An address as the socket tables print it: no scope, IPv4-mapped IPv6 as IPv4."""
    ip = ipaddress.ip_address(address[0].split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.compressed, int(address[1])


def find_socket(
    entries: Iterable[SocketEntry],
    local: tuple[str, int],
    remote: tuple[str, int],
    *,
    states: Collection[str] = (ESTABLISHED,),
) -> SocketEntry | None:
    """The socket whose own address is ``local`` and peer is ``remote``, in one of
    ``states`` (established, unless told)."""
    want_local, want_remote = normal_address(local), normal_address(remote)
    for entry in entries:
        if entry.state in states and entry.local == want_local and entry.remote == want_remote:
            return entry
    return None


def _diag_request(local: tuple[str, int], remote: tuple[str, int]) -> bytes:
    ours = ipaddress.ip_address(local[0])
    theirs = ipaddress.ip_address(remote[0])
    if ours.version != theirs.version:
        raise ValueError("addresses of two families")
    family = socket.AF_INET if ours.version == 4 else socket.AF_INET6
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
    request += struct.pack("!HH", local[1], remote[1])
    request += ours.packed.ljust(16, b"\0") + theirs.packed.ljust(16, b"\0")
    request += struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    return header + request


def lookup_tcp_socket(local: tuple[str, int], remote: tuple[str, int]) -> SocketEntry | None:
    """The kernel's one TCP socket with exactly this address pair, in whatever state (a
    ``sock_diag`` netlink request without a dump: a hash lookup, however many sockets there
    are). ``None`` when there is none; ``OSError`` when the kernel cannot be asked."""
    local, remote = normal_address(local), normal_address(remote)
    try:
        message = _diag_request(local, remote)
    except ValueError:
        return None
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(message, (0, 0))
        reply = nl.recv(65536)
    if len(reply) < 20:
        raise OSError(errno.EPROTO, "short sock_diag reply")
    kind = struct.unpack_from("=H", reply, 4)[0]
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", reply, 16)[0]
        if code == errno.ENOENT:
            return None
        raise OSError(code, os.strerror(code))
    if kind != SOCK_DIAG_BY_FAMILY or len(reply) < 16 + 72:
        raise OSError(errno.EPROTO, "unexpected sock_diag reply")
    state = reply[17]
    uid, inode = struct.unpack_from("=II", reply, 16 + 64)
    return SocketEntry(local=local, remote=remote, state=f"{state:02X}", uid=uid, inode=inode)


_diag_works: bool | None = None


def _diag_available() -> bool:
    """Whether ``lookup_tcp_socket`` can be believed when it finds nothing (asked once: a
    kernel without the TCP diag module answers ENOENT to everything)."""
    global _diag_works
    if _diag_works is None:
        works = False
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            probe.listen(1)
            found = lookup_tcp_socket(probe.getsockname(), ("0.0.0.0", 0))
            works = found is not None and found.inode == os.fstat(probe.fileno()).st_ino
        _diag_works = works
    return _diag_works


def read_socket_tables(proc: Path = PROC, *, own: bool = False) -> str:
    """``net/tcp`` and ``net/tcp6`` as one table (one header line); ``own``: this process's
    view (``/proc/self/net``), else ``/proc/net``."""
    base = proc / "self" / "net" if own else proc / "net"
    return _read(base / "tcp") + "\n" + "\n".join(_read(base / "tcp6").splitlines()[1:])


def find_tcp_socket(
    local: tuple[str, int],
    remote: tuple[str, int],
    *,
    states: Collection[str] = OPEN_STATES,
    proc: Path = PROC,
) -> SocketEntry | None:
    """The socket with this address pair in one of ``states`` (by default any that holds a
    connection). The kernel is asked directly when it can be (and ``proc`` is the real
    /proc); else this process's view of the /proc socket tables is read, all of it."""
    if proc == PROC and _diag_available():
        with contextlib.suppress(OSError):
            entry = lookup_tcp_socket(local, remote)
            return entry if entry is not None and entry.state in states else None
    table = read_socket_tables(proc, own=True)
    return find_socket(parse_socket_table(table), local, remote, states=states)


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
    entry = find_socket(parse_socket_table(read_socket_tables(proc)), peer, ours)
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
