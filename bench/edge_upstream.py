"""The bench's TLS upstream: a ~200-byte KMS-like JSON answer to every request.

nginx (Debian package ``nginx`` or ``nginx-light``) when ``/usr/sbin/nginx`` exists, otherwise
this module's own server (asyncio on uvloop, httptools), run as a separate process:

    python bench/edge_upstream.py --port P --cert CERT --key KEY

Its certificate comes from a bench CA made here (ECDSA P-256, name-constrained to loopback),
so every client verifies it: the generator directly, latchkey's edge through ``SSL_CERT_FILE``
(its verifying context loads the default verify paths), mitmproxy through
``ssl_verify_upstream_trusted_ca``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from latchkey.crypto.x509 import load_or_create_ca

NGINX = Path("/usr/sbin/nginx")

# What KMS answers to Encrypt, in size and shape (about 200 bytes).
BODY = (
    b'{"CiphertextBlob":"AQICAHhBenchBenchBenchBenchBenchBenchBenchAAAAbjBsBgkqhkiG9w0BBwag",'
    b'"EncryptionAlgorithm":"SYMMETRIC_DEFAULT","KeyId":'
    b'"arn:aws:kms:us-east-1:000000000000:key/5e2f2d7e-7c55-4b8e-9f43-3b7c9b0d6c1a"}'
)
MARKER = b'"CiphertextBlob"'  # what the generator requires in every answer
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
    b"x-amzn-RequestId: 0b6f2a1e-bench\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n"
) + BODY


@dataclass(frozen=True, slots=True)
class BenchPki:
    ca: Path  # the bench CA certificate (what clients of the upstream trust)
    cert: Path  # the upstream's leaf: 127.0.0.1 and localhost
    key: Path


def make_bench_pki(work: Path) -> BenchPki:
    """A bench CA (only loopback names) and a leaf for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca = load_or_create_ca(
        work / "bench-ca.pem",
        work / "bench-ca-key.pem",
        now=now,
        lifetime=dt.timedelta(days=2),
        permitted=["127.0.0.0/8", "localhost"],
    )
    cert_pem, key_pem = ca.mint_leaf(["127.0.0.1", "localhost"], now=now)
    cert, key = work / "upstream.pem", work / "upstream-key.pem"
    cert.write_bytes(cert_pem)
    fd = os.open(key, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    return BenchPki(work / "bench-ca.pem", cert, key)


def nginx_config(work: Path, port: int, pki: BenchPki) -> Path:
    """One nginx process (no master), keep-alive without limits, the fixed answer."""
    tmp = work / "nginx-tmp"
    tmp.mkdir(exist_ok=True)
    temp_paths = "\n".join(
        f"  {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi")
    )
    conf = f"""\
daemon off;
master_process off;
worker_processes 1;
error_log {work / "nginx-error.log"} warn;
pid {work / "nginx.pid"};
events {{ worker_connections 8192; }}
http {{
  access_log off;
{temp_paths}
  scgi_temp_path {tmp / "scgi"};
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {pki.cert};
    ssl_certificate_key {pki.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      default_type application/x-amz-json-1.1;
      add_header x-amzn-RequestId 0b6f2a1e-bench;
      return 200 '{BODY.decode()}';
    }}
  }}
}}
"""
    path = work / "nginx.conf"
    path.write_text(conf)
    return path


def nginx_command(work: Path, conf: Path) -> list[str]:
    return [str(NGINX), "-p", str(work), "-e", str(work / "nginx-error.log"), "-c", str(conf)]


# -- the Python fallback ------------------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """Answers every complete request on a keep-alive connection (pipelining included)."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        import httptools

        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    def on_message_complete(self) -> None:
        if self._transport is not None:
            self._transport.write(RESPONSE)


async def serve(port: int, cert: Path, key: Path) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    server = await asyncio.get_running_loop().create_server(
        _Upstream, "127.0.0.1", port, ssl=ctx, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description="the edge bench's Python TLS upstream (loopback)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    args = p.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port, args.cert, args.key))
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args.port, args.cert, args.key))


if __name__ == "__main__":
    main()
