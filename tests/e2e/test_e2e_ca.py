"""The latchkey CA against a running node: its name constraints as clients see them, a
Server Workload applied outside them (reported by `latchkey ca`, and refused by the edge, to a
caller its policy lets in, with a
502 that says why), export with per-runtime hints, and import/init refusals."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from latchkey_testing import VENV_BIN, UpProcess

pytestmark = pytest.mark.e2e

OUTSIDE = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: payments}
spec:
  host: api.payments.example
  port: 443
  tls: true
  authentication: {method: http, scheme: none}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: apps-to-payments}
spec: {clients: [local-apps], server: payments}
"""


def latchkey(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "latchkey"), *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def connect(up: UpProcess, host: str) -> bytes:
    """A CONNECT through the edge; the first bytes of its answer."""
    edge = up.info.edge.rsplit(":", 1)
    with socket.create_connection((edge[0].split("//")[1], int(edge[1])), timeout=10) as sock:
        sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        return sock.recv(4096)


def test_constraints_reported_and_enforced(up: UpProcess, tmp_path: Path) -> None:
    cert = x509.load_pem_x509_certificate(Path(up.info.ca_bundle).read_bytes())
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    shown = latchkey(up.data_dir, "ca")
    assert shown.returncode == 0, shown.stderr
    assert "permits:      amazonaws.com, localhost, 127.0.0.0/8, ::1/128" in shown.stdout

    doc = tmp_path / "payments.yaml"
    doc.write_text(OUTSIDE)
    applied = latchkey(up.data_dir, "apply", "-f", str(doc))
    assert applied.returncode == 0, applied.stderr
    warned = latchkey(up.data_dir, "ca", "show")
    assert warned.returncode == 3
    assert "payments (api.payments.example)" in warned.stdout
    answer = connect(up, "api.payments.example")
    assert answer.startswith(b"HTTP/1.1 502 ")
    assert b"name constraints do not cover api.payments.example" in answer
    assert "the latchkey CA's name constraints do not cover api.payments.example" in (
        up.log_path.read_text()
    )
    # The edge's own leaf for an AWS host still verifies against the exported CA.
    exported = latchkey(up.data_dir, "ca", "export")
    assert exported.stdout.startswith("-----BEGIN CERTIFICATE-----")
    for hint in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"):
        assert f"export {hint}=" in exported.stderr
    assert "PRIVATE KEY" not in exported.stdout + exported.stderr
    ctx = ssl.create_default_context(cadata=exported.stdout)
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_init_and_import_refuse_to_replace_without_force(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = latchkey(data, "ca", "init", "--permit", "payments.example")
    assert made.returncode == 0, made.stderr
    assert "payments.example" in made.stdout
    again = latchkey(data, "ca", "init")
    assert again.returncode == 1
    assert "--force replaces it" in again.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    imported = latchkey(data, "ca", "import", str(bad), str(bad), "--force")
    assert imported.returncode == 1
    assert "is not a PEM certificate" in imported.stderr
    assert latchkey(data, "ca").returncode == 0  # the CA made by init is untouched
