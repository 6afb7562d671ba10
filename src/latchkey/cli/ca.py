"""``latchkey ca``: show, export, create or import the CA the edge mints leaves with."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from latchkey.crypto.x509 import CertificateAuthority, import_ca, load_or_create_ca
from latchkey.edge.cascope import permitted_for
from latchkey.secretfile import private_dir

HINTS = """\
# Trust it in each runtime (the edge re-encrypts TLS with this CA):
export AWS_CA_BUNDLE={path}        # aws CLI, boto3/botocore, every AWS SDK that reads it
export REQUESTS_CA_BUNDLE={path}   # Python requests
export SSL_CERT_FILE={path}        # OpenSSL-based runtimes (Python ssl, Ruby, curl builds)
export NODE_EXTRA_CA_CERTS={path}  # Node.js (added to its built-in roots)
"""


def _sub_data_dir(p: argparse.ArgumentParser) -> None:
    """``--data-dir`` after the subcommand too, without overriding one given before it."""
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_ca_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_data_dir: Callable[[argparse.ArgumentParser], None],
) -> None:
    ca = sub.add_parser("ca", help="the CA the edge mints per-host certificates with")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="COMMAND")
    show = ca_sub.add_parser(
        "show",
        help="(default) the CA's subject, fingerprint, validity and name constraints; with a "
        "running node, the Server Workloads it cannot certify",
    )
    _sub_data_dir(show)
    export = ca_sub.add_parser(
        "export", help="print the CA certificate (PEM) and, on stderr, how runtimes trust it"
    )
    _sub_data_dir(export)
    init = ca_sub.add_parser(
        "init",
        help="create the CA now, name-constrained to amazonaws.com, the loopback names and "
        "each --permit (latchkey up creates one on first start otherwise)",
    )
    _sub_data_dir(init)
    init.add_argument(
        "--permit",
        action="append",
        default=[],
        metavar="DOMAIN|CIDR",
        help="another domain (and the names below it) or IP network the CA may certify",
    )
    init.add_argument(
        "--force", action="store_true", help="replace an existing CA (clients must re-trust)"
    )
    imp = ca_sub.add_parser("import", help="use an existing CA certificate and key instead")
    _sub_data_dir(imp)
    imp.add_argument("cert", type=Path, help="CA certificate, PEM")
    imp.add_argument("key", type=Path, help="its private key, PEM, unencrypted (EC or RSA)")
    imp.add_argument(
        "--force", action="store_true", help="replace an existing CA (clients must re-trust)"
    )
    ca.set_defaults(ca_command="show")
    add_data_dir(ca)


def _paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "ca.pem", data_dir / "ca-key.pem"


def _key_kind(ca: CertificateAuthority) -> str:
    key = ca.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ECDSA {key.curve.name}"
    return f"RSA {key.key_size}"


def _describe(ca: CertificateAuthority, cert_path: Path) -> str:
    cert = ca.certificate
    permitted = ca.permitted
    scope = "none (every name)" if permitted is None else ", ".join(permitted)
    return "\n".join(
        [
            f"certificate:  {cert_path}",
            f"subject:      {cert.subject.rfc4514_string()}",
            f"sha256:       {ca.fingerprint}",
            f"valid:        {cert.not_valid_before_utc:%Y-%m-%d} .. "
            f"{cert.not_valid_after_utc:%Y-%m-%d}",
            f"key:          {_key_kind(ca)}",
            f"permits:      {scope}",
        ]
    )


def _outside_running(ca: CertificateAuthority, data_dir: Path) -> list[str] | None:
    """Server Workloads of the running node the CA cannot certify; None when not running."""
    from latchkey.cli.control import ControlClient

    try:
        client = ControlClient(data_dir)
        items = client.call("GET", "/ServerWorkload")["items"]
    except Exception:  # not running or not reachable: say nothing about workloads
        return None
    found = []
    for item in items:
        spec, host = item["spec"], str(item["spec"]["host"])
        probe = "x." + host[2:] if host.startswith("*.") else host
        if spec.get("tls", True) and not ca.permits(probe):
            found.append(f"{item['metadata']['name']} ({host})")
    return found


def run_ca(args: argparse.Namespace, data_dir: Path) -> int:
    cert_path, key_path = _paths(data_dir)
    now = dt.datetime.now(dt.UTC)
    command = args.ca_command
    try:
        if command in ("init", "import"):
            if key_path.exists() and not args.force:
                print(f"latchkey: a CA exists in {data_dir}; --force replaces it (every client "
                      "must then trust the new one)", file=sys.stderr)  # fmt: skip
                return 1
            private_dir(data_dir)
            if command == "init":
                for path in (cert_path, key_path):
                    path.unlink(missing_ok=True)
                ca = load_or_create_ca(
                    cert_path, key_path, now=now, permitted=permitted_for([], args.permit)
                )
            else:
                ca = import_ca(args.cert.read_bytes(), args.key.read_bytes(), cert_path, key_path,
                               now=now)  # fmt: skip
            print(_describe(ca, cert_path))
            print("a running node uses the new CA after a restart")
            return 0
        if not cert_path.exists():
            print(f"latchkey: no CA in {data_dir} yet (`latchkey up` or `latchkey ca init` "
                  "creates one)", file=sys.stderr)  # fmt: skip
            return 1
        ca = load_or_create_ca(cert_path, key_path, now=now)
    except (OSError, ValueError) as exc:
        print(f"latchkey: {exc}", file=sys.stderr)
        return 1
    if command == "export":
        sys.stdout.write(ca.cert_pem.decode())
        print(HINTS.format(path=cert_path.resolve()), file=sys.stderr, end="")
        return 0
    print(_describe(ca, cert_path))
    outside = _outside_running(ca, data_dir)
    if outside:
        print("\nwarning: the CA's name constraints do not cover these Server Workloads; "
              "clients will reject their certificates:")  # fmt: skip
        for entry in outside:
            print(f"  {entry}")
        print("create a CA that permits them (`latchkey ca init --force --permit DOMAIN`) or "
              "import one (`latchkey ca import`), then restart")  # fmt: skip
        return 3
    return 0
