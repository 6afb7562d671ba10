"""Finding the local process behind a loopback TCP peer, through /proc."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from latchkey.edge import peer
from latchkey.edge.peer import (
    OPEN_STATES,
    decode_address,
    find_peer_process,
    find_socket,
    find_tcp_socket,
    lookup_tcp_socket,
    parse_socket_table,
)

TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1
   1: 0100007F:D431 0100007F:1F40 01 00000000:00000000 00:00000000 00000000  1001        0 222 1
   2: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 333 1
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0100007F:1F40", ("127.0.0.1", 8000)),
        ("00000000:0000", ("0.0.0.0", 0)),
        ("00000000000000000000000001000000:0050", ("::1", 80)),
        ("0000000000000000FFFF00000100007F:01BB", ("127.0.0.1", 443)),  # IPv4-mapped
    ],
)
def test_decode_address(text: str, expected: tuple[str, int]) -> None:
    assert decode_address(text) == expected


def test_find_socket_picks_the_peer_side_of_an_established_pair() -> None:
    entries = list(parse_socket_table(TABLE))
    assert len(entries) == 3
    found = find_socket(entries, ("127.0.0.1", 0xD431), ("127.0.0.1", 8000))
    assert found is not None
    assert (found.uid, found.inode) == (1001, 222)
    assert find_socket(entries, ("127.0.0.1", 1), ("127.0.0.1", 8000)) is None
    # the listening socket never matches a connection
    assert find_socket(entries, ("127.0.0.1", 8000), ("0.0.0.0", 0)) is None


# a socket that has sent its FIN (FIN_WAIT2), one in TIME_WAIT (no inode) and a listener
CLOSING_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:D432 0100007F:1F40 05 00000000:00000000 00:00000000 00000000  1001        0 444 1
   1: 0100007F:D433 0100007F:1F40 06 00000000:00000000 00:00000000 00000000     0        0 0 1
   2: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1
"""


def test_find_socket_in_any_state_that_holds_a_connection() -> None:
    entries = list(parse_socket_table(CLOSING_TABLE))
    fin_wait = (("127.0.0.1", 0xD432), ("127.0.0.1", 8000))
    assert find_socket(entries, *fin_wait) is None  # established only, unless told
    found = find_socket(entries, *fin_wait, states=OPEN_STATES)
    assert found is not None
    assert found.inode == 444
    assert (
        find_socket(entries, ("127.0.0.1", 0xD433), ("127.0.0.1", 8000), states=OPEN_STATES) is None
    )
    assert find_socket(entries, ("127.0.0.1", 8000), ("0.0.0.0", 0), states=OPEN_STATES) is None


def test_find_tcp_socket_reads_this_process_tables_without_the_kernel(tmp_path: Path) -> None:
    net = tmp_path / "self" / "net"
    net.mkdir(parents=True)
    (net / "tcp").write_text(CLOSING_TABLE)
    found = find_tcp_socket(("127.0.0.1", 0xD432), ("::ffff:127.0.0.1", 8000), proc=tmp_path)
    assert found is not None
    assert (found.state, found.uid, found.inode) == ("05", 1001, 444)
    assert find_tcp_socket(("127.0.0.1", 0xD433), ("127.0.0.1", 8000), proc=tmp_path) is None


def _diag_or_skip() -> None:
    if not Path("/proc/net/tcp").exists() or not peer._diag_available():
        pytest.skip("needs Linux with sock_diag (netlink)")


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_lookup_tcp_socket_asks_the_kernel_for_one_socket(family: int, host: str) -> None:
    _diag_or_skip()
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((host, 0))
        server.listen()
        listening = server.getsockname()[:2]
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.connect(listening)
            conn, _ = server.accept()
            with conn:
                mine = client.getsockname()[:2]
                found = lookup_tcp_socket(mine, listening)
                assert found is not None
                assert found.state == "01"
                assert found.uid == os.geteuid()
                assert found.inode == os.fstat(client.fileno()).st_ino
                client.shutdown(socket.SHUT_WR)  # its FIN: FIN_WAIT1, then FIN_WAIT2
                assert conn.recv(1) == b""
                found = lookup_tcp_socket(mine, listening)
                assert found is not None
                assert found.state in ("04", "05")
                assert find_tcp_socket(mine, listening) == found
                assert find_tcp_socket(mine, listening, states=("01",)) is None
        assert lookup_tcp_socket((host, 1), listening) is None


@contextmanager
def accepted_pair(family: int, host: str) -> Iterator[socket.socket]:
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((host, 0))
        server.listen()
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.connect(server.getsockname()[:2])
            conn, _ = server.accept()
            with conn:
                yield conn


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_finds_this_process_over_ipv4() -> None:
    with accepted_pair(socket.AF_INET, "127.0.0.1") as conn:
        info = find_peer_process(conn)
    assert info is not None
    assert info.pid == os.getpid()
    assert info.uid == os.getuid()
    assert info.exe == os.path.realpath(sys.executable)
    assert "pytest" in " ".join(info.cmdline)
    with open(os.path.realpath(sys.executable), "rb") as f:
        assert info.exe_sha256() == hashlib.sha256(f.read()).hexdigest()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_finds_this_process_over_ipv6() -> None:
    try:
        pair = accepted_pair(socket.AF_INET6, "::1")
        conn = pair.__enter__()
    except OSError:
        pytest.skip("::1 is not configured here")
    try:
        info = find_peer_process(conn)
    finally:
        pair.__exit__(None, None, None)
    assert info is not None
    assert info.pid == os.getpid()


def test_finds_another_process(tmp_path: Path) -> None:
    """A child process (a different executable path: /bin/sh running python) is told apart."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = (
            "import socket,sys,time\n"
            f"s=socket.create_connection(('127.0.0.1',{port}))\n"
            "sys.stdin.read()\n"
        )
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
        try:
            conn, _ = server.accept()
            with conn:
                info = find_peer_process(conn)
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(10)
    assert info is not None
    assert info.pid == child.pid
    assert info.cmdline[:2] == (sys.executable, "-c")


def test_a_peer_that_is_gone_is_none() -> None:
    assert find_peer_process(ours=("127.0.0.1", 1), peer=("127.0.0.1", 2)) is None


def test_loopback_callers_are_this_host() -> None:
    import asyncio

    from latchkey.edge.peer import caller_hostname

    assert asyncio.run(caller_hostname("127.0.0.1")) == socket.gethostname()
    assert asyncio.run(caller_hostname("::ffff:127.0.0.1")) == socket.gethostname()
    assert asyncio.run(caller_hostname("not an address")) is None
