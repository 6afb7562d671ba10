"""Re-signing through the edge, against an upstream that verifies SigV4 itself.

The upstream is a small HTTPS server on 127.0.0.1 (leaf from the node's CA, which the edge
trusts). It plays two parts:

* the credential provider's STS: ``AssumeRoleWithWebIdentity`` hands the edge short-lived keys
  the test chose, so the upstream knows the secret the edge signs with (the simplest honest
  way: the local cloud never reveals a secret, and federation has its own tests);
* KMS (JSON), STS (query) and an S3-like object store, each request verified with botocore's
  own signers (``SigV4Auth``, ``S3SigV4Auth`` for S3's encode-once paths) and, for streaming
  uploads, an independent chunk-chain check written here (not the edge's code).

Clients are boto3 (through HTTPS_PROXY semantics: ``proxies``) with placeholder keys, with and
without a placeholder session token, plus raw sockets for the streaming signed uploads, which
boto3 never sends, and for ``Expect: 100-continue``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import io
import json
import secrets
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from latchkey.aws import sigv4
from latchkey.aws.chunked import ChunkSigning, sign_chunks
from latchkey.crypto.x509 import load_or_create_ca, server_ssl_context
from latchkey_testing import UpProcess, read_head, start_up_process

pytestmark = pytest.mark.e2e

REGION = "us-east-1"
S3_HOST = "s3.amazonaws.com"  # boto3's endpoint for us-east-1
PLACEHOLDER_KEY = "AKIALATCHKEYPLACEHLD"
PLACEHOLDER_SECRET = "placeholder-secret-of-the-matrix"
PLACEHOLDER_TOKEN = "placeholder-session-token-of-the-matrix"
KEYS = ["plain.txt", "dir%2Fname.txt", "with space.txt", "a=b.txt", "user@host.txt"]
BUCKET = "matrix"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"

CONFIG = """\
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: upstream-sts}}
spec:
  type: aws-sts-federation
  roleArn: arn:aws:iam::000000000000:role/matrix
  audience: sts.amazonaws.com
  stsEndpoint: https://127.0.0.1:{port}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: loopback}}
spec: {{identities: [{{sourceCidr: 127.0.0.0/8}}]}}
"""
SERVER = """\
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: {name}}}
spec:
  host: {host}
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {port}, tls: true}}
  authentication: {{method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: loopback-to-{name}}}
spec: {{clients: [loopback], server: {name}, credentialProvider: upstream-sts}}
"""


class Refused(Exception):
    """The upstream's verification failed (answered 403, recorded for the test)."""


@dataclass
class Seen:
    service: str
    method: str
    path: str
    mode: str
    signed_headers: list[str]
    expect: bool


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_chunks(body: bytes, key: bytes, date: str, scope: str, seed: str, trailer: bool,
                 signed: bool = True) -> bytes:  # fmt: skip
    """Decode an aws-chunked body, checking every chunk (and trailer) signature."""
    pos, previous, out = 0, seed, bytearray()
    while True:
        end = body.index(b"\r\n", pos)
        line, pos = body[pos:end].decode(), end + 2
        size_hex, _, sig = line.partition(";chunk-signature=")
        size = int(size_hex, 16)
        data, pos = body[pos : pos + size], pos + size
        if signed:
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", date, scope, previous, sha256(b""),
                             sha256(data)])  # fmt: skip
            expected = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, sig):
                raise Refused(f"chunk signature mismatch at offset {pos}")
            previous = sig
        if size == 0:
            break
        if body[pos : pos + 2] != b"\r\n":
            raise Refused("chunk not followed by CRLF")
        pos += 2
        out += data
    if not trailer:
        if body[pos:] != b"\r\n":
            raise Refused("bad end of the aws-chunked body")
        return bytes(out)
    fields: dict[str, str] = {}
    trailer_sig = None
    while True:
        end = body.index(b"\r\n", pos)
        line, pos = body[pos:end].decode(), end + 2
        if not line:
            break
        name, _, value = line.partition(":")
        if name == "x-amz-trailer-signature":
            trailer_sig = value
        else:
            fields[name.strip().lower()] = value.strip()
    if pos != len(body):
        raise Refused("data after the trailer")
    if signed:
        canonical = "".join(f"{k}:{v}\n" for k, v in fields.items()).encode()
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", date, scope, previous, sha256(canonical)])
        expected = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if trailer_sig is None or not hmac.compare_digest(expected, trailer_sig):
            raise Refused("trailer signature mismatch")
    crc = fields.get("x-amz-checksum-crc32")
    if crc is not None and base64.b64decode(crc) != zlib.crc32(out).to_bytes(4, "big"):
        raise Refused("trailer checksum mismatch")
    return bytes(out)


@dataclass
class Upstream:
    """STS for the edge's credentials, and a verifying KMS / STS / S3 behind the edge."""

    access_key: str = field(default_factory=lambda: "ASIA" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    session_token: str = field(default_factory=lambda: "real-" + secrets.token_urlsafe(40))
    objects: dict[str, bytes] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    assumed: int = 0

    def verify(self, method: str, target: str, headers: list[tuple[str, str]],
               body: bytes) -> tuple[str, str, bytes]:  # fmt: skip
        """(service, payload mode, decoded body), or ``Refused``."""
        lower = [(k.lower(), v) for k, v in headers]
        for name, value in [*lower, ("target", target)]:
            if PLACEHOLDER_KEY in value or "placeholder" in value.lower():
                raise Refused(f"a placeholder credential reached the upstream in {name}")
        values = dict(lower)
        auth = values.get("authorization", "")
        fields = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
        access_key, date, region, service, _ = fields["Credential"].split("/")
        if access_key != self.access_key:
            raise Refused("signed with an access key that is not the real one")
        if values.get("x-amz-security-token") != self.session_token:
            raise Refused("the session token is not the real one")
        amz_date = values["x-amz-date"]
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if abs(dt.datetime.now(dt.UTC) - signed_at) > dt.timedelta(minutes=5):
            raise Refused("signature time out of range")
        names = fields["SignedHeaders"].split(";")
        if "host" not in names or any(n.startswith("x-amz-") and n not in names for n, _ in lower):
            raise Refused("host or an x-amz-* header is not signed")
        request = AWSRequest(method=method, url=f"https://{values['host']}{target}",
                             headers={k: v for k, v in headers if k.lower() in names},
                             data=body)  # fmt: skip
        request.context["timestamp"] = amz_date
        auth_class = S3SigV4Auth if service == "s3" else SigV4Auth
        signer = auth_class(
            BotoCredentials(self.access_key, self.secret_key, self.session_token), service, region
        )
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise Refused(f"SignatureDoesNotMatch ({service} {method} {target})")
        mode = values.get("x-amz-content-sha256", "none")
        decoded = body
        key = signing_key(self.secret_key, date, region, service)
        scope = f"{date}/{region}/{service}/aws4_request"
        if mode.startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
            decoded = check_chunks(body, key, amz_date, scope, fields["Signature"],
                                   trailer=mode.endswith("-TRAILER"))  # fmt: skip
        elif mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
            decoded = check_chunks(body, key, amz_date, scope, "", trailer=True, signed=False)
        elif mode not in ("UNSIGNED-PAYLOAD", "none") and mode != sha256(body):
            raise Refused("x-amz-content-sha256 does not match the body")
        declared = values.get("x-amz-decoded-content-length")
        if declared is not None and int(declared) != len(decoded):
            raise Refused("x-amz-decoded-content-length does not match")
        self.seen.append(Seen(service, method, target, mode, names, "expect" in values))
        return service, mode, decoded

    def sts_credentials(self) -> bytes:
        self.assumed += 1
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_NS}">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>{self.access_key}</AccessKeyId>"
            f"<SecretAccessKey>{self.secret_key}</SecretAccessKey>"
            f"<SessionToken>{self.session_token}</SessionToken>"
            f"<Expiration>{expires}</Expiration>"
            "</Credentials></AssumeRoleWithWebIdentityResult>"
            "</AssumeRoleWithWebIdentityResponse>"
        ).encode()


def make_handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.read(2)
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  length: int | None = None) -> None:  # fmt: skip
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_one(self) -> None:
            body = self.read_body()
            if "authorization" not in {k.lower() for k in self.headers}:
                form = parse_qs(body.decode())
                if form.get("Action") == ["AssumeRoleWithWebIdentity"]:
                    self.reply(200, up.sts_credentials(), {"Content-Type": "text/xml"})
                    return
            try:
                service, _mode, data = up.verify(
                    self.command, self.path, list(self.headers.items()), body
                )
            except Exception as exc:  # every failure is the edge's: record and refuse
                up.failures.append(f"{exc.__class__.__name__}: {exc}")
                why = f"<Error><Code>SignatureDoesNotMatch</Code><Message>{exc}</Message></Error>"
                self.reply(403, why.encode(), {"Content-Type": "application/xml"})
                return
            if service == "kms":
                plain = json.loads(data)["Plaintext"]
                sealed = base64.b64encode(b"sealed:" + base64.b64decode(plain)).decode()
                answer = {"CiphertextBlob": sealed, "KeyId": "k"}
                self.reply(200, json.dumps(answer).encode(),
                           {"Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
            elif service == "sts":
                xml = (f'<GetCallerIdentityResponse xmlns="{STS_NS}"><GetCallerIdentityResult>'
                       "<Arn>arn:aws:sts::000000000000:assumed-role/matrix/edge</Arn>"
                       "<UserId>AROAMATRIX:edge</UserId><Account>000000000000</Account>"
                       "</GetCallerIdentityResult></GetCallerIdentityResponse>")  # fmt: skip
                self.reply(200, xml.encode(), {"Content-Type": "text/xml"})
            else:
                self.s3(unquote(urlsplit(self.path).path), data)

        def s3(self, name: str, data: bytes) -> None:
            if self.command == "PUT":
                up.objects[name] = data
                self.reply(200, b"", {"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
            elif name in up.objects:
                obj = up.objects[name]
                etag = f'"{hashlib.md5(obj).hexdigest()}"'
                self.reply(200, obj, {"ETag": etag, "Content-Type": "binary/octet-stream"})
            else:
                xml = b"<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>"
                self.reply(404, xml, {"Content-Type": "application/xml"})

        do_GET = do_PUT = do_POST = do_HEAD = handle_one

    return Handler


@dataclass
class Matrix:
    up: UpProcess
    upstream: Upstream
    edge: tuple[str, int]

    @property
    def proxy(self) -> str:
        return self.up.info.edge

    def client(self, service: str, token: bool, **config: Any) -> Any:
        boto = BotoConfig(proxies={"https": self.proxy}, retries={"max_attempts": 1}, **config)
        return boto3.client(
            service, region_name=REGION, verify=self.up.info.ca_bundle, config=boto,
            aws_access_key_id=PLACEHOLDER_KEY, aws_secret_access_key=PLACEHOLDER_SECRET,
            aws_session_token=PLACEHOLDER_TOKEN if token else None,
        )  # fmt: skip

    def s3(self, token: bool, **config: Any) -> Any:
        return self.client("s3", token, s3={"addressing_style": "path"}, **config)

    def tunnel(self, host: str = S3_HOST) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context(cafile=self.up.info.ca_bundle)
        conn = http.client.HTTPSConnection(*self.edge, context=ctx, timeout=30)
        conn.set_tunnel(host, 443)
        return conn

    def last(self) -> Seen:
        assert not self.upstream.failures, self.upstream.failures
        return self.upstream.seen[-1]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    upstream = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(upstream))
    server.daemon_threads = True
    port = server.server_address[1]
    tmp = tmp_path_factory.mktemp("matrix")
    hosts = {"kms": f"kms.{REGION}.amazonaws.com", "sts": f"sts.{REGION}.amazonaws.com",
             "s3": S3_HOST}  # fmt: skip
    config = CONFIG.format(port=port) + "".join(
        SERVER.format(name=name, host=host, port=port) for name, host in hosts.items()
    )
    (tmp / "config.yaml").write_text(config)
    up = start_up_process(tmp / "data", "--config", str(tmp / "config.yaml"))
    now = dt.datetime.now(dt.UTC)
    ca = load_or_create_ca(tmp / "data" / "ca.pem", tmp / "data" / "ca-key.pem", now=now)
    cert, key = ca.mint_leaf(["127.0.0.1"], now=now)
    server.socket = server_ssl_context(cert, key).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Matrix(up, upstream, up.edge_address)
    finally:
        log = up.stop()
        server.shutdown()
        server.server_close()
        thread.join(5)
        for secret in (upstream.secret_key, upstream.session_token, PLACEHOLDER_SECRET):
            assert secret not in log


TOKENS = pytest.mark.parametrize("token", [True, False], ids=["placeholder-token", "no-token"])


@TOKENS
def test_kms_json(matrix: Matrix, token: bool) -> None:
    kms = matrix.client("kms", token)
    out = kms.encrypt(KeyId="alias/matrix", Plaintext=b"kms-plaintext")
    kms.close()
    assert out["CiphertextBlob"] == b"sealed:kms-plaintext"
    seen = matrix.last()
    assert (seen.service, seen.mode) == ("kms", "none")  # the edge hashed the body


@TOKENS
def test_sts_query(matrix: Matrix, token: bool) -> None:
    sts = matrix.client("sts", token)
    out = sts.get_caller_identity()
    sts.close()
    assert out["Account"] == "000000000000"
    assert (matrix.last().service, matrix.last().method) == ("sts", "POST")


S3_MODES = {
    "hex-hash": ({"request_checksum_calculation": "when_required",
                  "s3": {"addressing_style": "path", "payload_signing_enabled": True}}, "hex"),
    "unsigned-payload": ({"request_checksum_calculation": "when_required"}, "UNSIGNED-PAYLOAD"),
    "unsigned-trailer": ({}, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
}  # fmt: skip


@TOKENS
@pytest.mark.parametrize("mode", S3_MODES, ids=S3_MODES.keys())
@pytest.mark.parametrize("key", KEYS)
def test_s3_put_get_head(matrix: Matrix, token: bool, mode: str, key: str) -> None:
    config, expected = S3_MODES[mode]
    config = {"s3": {"addressing_style": "path"}} | config
    s3 = matrix.client("s3", token, **config)
    data = f"{mode}:{key}:{token}".encode() * 100
    extra: dict[str, Any] = {}
    if mode == "unsigned-payload":  # a header checksum over TLS: botocore leaves the body unsigned
        extra["ContentMD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=BUCKET, Key=key, Body=data, **extra)
    put = matrix.last()
    assert put.path == f"/{BUCKET}/{quote(key, safe='/~')}"  # encoded once, by the client
    assert put.mode == expected if expected != "hex" else put.mode == sha256(data)
    assert matrix.upstream.objects[f"/{BUCKET}/{key}"] == data
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(data)
    assert [s.method for s in matrix.upstream.seen[-2:]] == ["GET", "HEAD"]
    s3.close()
    assert not matrix.upstream.failures


def test_s3_file_upload_sends_expect_100_continue(matrix: Matrix) -> None:
    """boto3 sends Expect: 100-continue for file bodies; the edge answers it, the upstream
    gets the body without the expectation."""
    s3 = matrix.s3(True)
    data = secrets.token_bytes(300_000)
    s3.put_object(Bucket=BUCKET, Key="file.bin", Body=io.BytesIO(data))
    assert matrix.upstream.objects[f"/{BUCKET}/file.bin"] == data
    assert matrix.last().expect is False
    s3.close()


def test_s3_large_bodies_stream_both_ways(matrix: Matrix) -> None:
    """20 MiB up and down: over the 8 MiB buffered-body limit, so both were streamed."""
    s3 = matrix.s3(False)
    data = secrets.token_bytes(20 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="large.bin", Body=data)
    assert matrix.upstream.objects[f"/{BUCKET}/large.bin"] == data
    got = s3.get_object(Bucket=BUCKET, Key="large.bin")["Body"].read()
    s3.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def streaming_put(key: str, chunks: list[bytes], *, trailer: bool, token: bool,
                  chunked: bool = False) -> tuple[str, dict[str, str], bytes]:  # fmt: skip
    """A chunk-signed upload as the Java / Go SDKs send it, signed with the placeholder key."""
    mode = sigv4.STREAMING_PAYLOAD_TRAILER if trailer else sigv4.STREAMING_PAYLOAD
    payload = b"".join(chunks)
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big"))
    headers = {"Host": S3_HOST, "Content-Encoding": "aws-chunked", "x-amz-content-sha256": mode,
               "x-amz-decoded-content-length": str(len(payload))}  # fmt: skip
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    path = f"/{BUCKET}/{quote(key, safe='/~')}"
    now = dt.datetime.now(dt.UTC)
    creds = sigv4.Credentials(PLACEHOLDER_KEY, PLACEHOLDER_SECRET,
                              PLACEHOLDER_TOKEN if token else None)  # fmt: skip
    request = sigv4.HttpRequest("PUT", path, "", tuple(headers.items()))
    signed = dict(
        sigv4.sign_request_headers(
            request,
            creds,
            region=REGION,
            service="s3",
            now=now,
            normalize_path=False,
            encode_path=False,
        )
    )
    scope = sigv4.CredentialScope(now.strftime("%Y%m%d"), REGION, "s3")
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    placeholder = ChunkSigning(sigv4.derive_signing_key(PLACEHOLDER_SECRET, scope),
                               sigv4.format_amz_date(now), scope, seed)  # fmt: skip
    body = sign_chunks(
        chunks, placeholder, trailer=[b"x-amz-checksum-crc32:" + crc] if trailer else None
    )
    if not chunked:
        signed["Content-Length"] = str(len(body))
    return path, signed, body


@TOKENS
@pytest.mark.parametrize("trailer", [False, True], ids=["payload", "payload-trailer"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_streaming_chunk_signed_upload(matrix: Matrix, token: bool, trailer: bool,
                                       framing: str) -> None:  # fmt: skip
    chunks = [secrets.token_bytes(65536), secrets.token_bytes(65536), secrets.token_bytes(1000)]
    key = f"streamed {framing} {trailer}@x=y%2Fz"
    path, headers, body = streaming_put(key, chunks, trailer=trailer, token=token,
                                        chunked=framing == "chunked")  # fmt: skip
    conn = matrix.tunnel()
    pieces = [body[i : i + 7000] for i in range(0, len(body), 7000)]
    conn.request("PUT", path, body=iter(pieces) if framing == "chunked" else body,
                 headers=headers, encode_chunked=framing == "chunked")  # fmt: skip
    resp = conn.getresponse()
    answer = resp.read()
    conn.close()
    assert resp.status == 200, answer
    assert matrix.upstream.objects[f"/{BUCKET}/{key}"] == b"".join(chunks)
    seen = matrix.last()
    assert seen.mode == headers["x-amz-content-sha256"]
    assert {"x-amz-decoded-content-length", "content-encoding"} <= set(seen.signed_headers)


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_a_presigned_url_gets_a_400_naming_the_workaround(matrix: Matrix, version: str) -> None:
    s3 = matrix.s3(True, signature_version=version)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "plain.txt"})
    s3.close()
    seen = len(matrix.upstream.seen)
    conn = matrix.tunnel()
    parts = urlsplit(url)
    conn.request("GET", f"{parts.path}?{parts.query}")
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.status == 400
    assert "<Code>InvalidRequest</Code>" in body
    assert "presigned" in body
    assert "header-signed" in body
    assert PLACEHOLDER_SECRET not in body
    assert len(matrix.upstream.seen) == seen


def test_a_compressed_request_gets_a_400_naming_the_workaround(matrix: Matrix) -> None:
    body = zlib.compress(b'{"KeyId":"alias/matrix","Plaintext":"aGk="}')
    request = AWSRequest(method="POST", url=f"https://kms.{REGION}.amazonaws.com/", data=body,
                         headers={"X-Amz-Target": "TrentService.Encrypt",
                                  "Content-Type": "application/x-amz-json-1.1",
                                  "Content-Encoding": "gzip"})  # fmt: skip
    SigV4Auth(BotoCredentials(PLACEHOLDER_KEY, PLACEHOLDER_SECRET), "kms", REGION).add_auth(request)
    conn = matrix.tunnel(f"kms.{REGION}.amazonaws.com")
    conn.request("POST", "/", body=body, headers=dict(request.headers.items()))
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    conn.close()
    assert resp.status == 400
    assert answer["__type"] == "InvalidRequest"
    assert "AWS_DISABLE_REQUEST_COMPRESSION=true" in answer["message"]


def raw_tunnel(matrix: Matrix) -> ssl.SSLSocket:
    sock = socket.create_connection(matrix.edge, timeout=10)
    sock.sendall(f"CONNECT {S3_HOST}:443 HTTP/1.1\r\nHost: {S3_HOST}:443\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    ctx = ssl.create_default_context(cafile=matrix.up.info.ca_bundle)
    return ctx.wrap_socket(sock, server_hostname=S3_HOST)


def test_expect_100_continue_on_a_raw_socket(matrix: Matrix) -> None:
    """The edge answers 100 Continue before the body is sent, then the final answer."""
    data = b"sent after 100 Continue"
    request = AWSRequest(method="PUT", url=f"https://{S3_HOST}/{BUCKET}/expect.txt", data=data,
                         headers={"Expect": "100-continue"})  # fmt: skip
    S3SigV4Auth(BotoCredentials(PLACEHOLDER_KEY, PLACEHOLDER_SECRET), "s3", REGION).add_auth(
        request
    )
    head = [
        f"PUT /{BUCKET}/expect.txt HTTP/1.1",
        f"Host: {S3_HOST}",
        f"Content-Length: {len(data)}",
        *(f"{k}: {v}" for k, v in request.headers.items()),
    ]
    with raw_tunnel(matrix) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(data)
        assert read_head(sock).startswith(b"HTTP/1.1 200 ")
    assert matrix.upstream.objects[f"/{BUCKET}/expect.txt"] == data
    assert matrix.last().expect is False


def test_expect_100_continue_refused_without_continue(matrix: Matrix) -> None:
    """A refusal comes as the final answer, without 100 Continue, and the connection closes."""
    s3 = matrix.s3(True, signature_version="s3v4")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "never.txt"})
    s3.close()
    parts = urlsplit(url)
    head = f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {S3_HOST}\r\nContent-Length: 5\r\n"
    with raw_tunnel(matrix) as sock:
        sock.sendall((head + "Expect: 100-continue\r\n\r\n").encode())
        answer = read_head(sock)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"Connection: close" in answer
    assert f"/{BUCKET}/never.txt" not in matrix.upstream.objects


def test_no_credential_reached_the_upstream_wrongly(matrix: Matrix) -> None:
    """After the matrix: every verified request used the real keys; nothing failed."""
    assert not matrix.upstream.failures
    assert matrix.upstream.assumed >= 1
    assert len(matrix.upstream.seen) > 20


def test_client_error_from_s3_is_relayed(matrix: Matrix) -> None:
    s3 = matrix.s3(True)
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=BUCKET, Key="missing.txt")
    s3.close()
    assert err.value.response["Error"]["Code"] == "NoSuchKey"


def test_upstream_path_is_what_the_client_sent(matrix: Matrix, tmp_path: Path) -> None:
    """S3 paths are encoded once: the upstream sees the client's encoding, untouched."""
    s3 = matrix.s3(False)
    s3.put_object(Bucket=BUCKET, Key="dir%2Fname.txt", Body=b"x")
    s3.close()
    assert matrix.last().path == f"/{BUCKET}/dir%252Fname.txt"
