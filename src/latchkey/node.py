"""A latchkey node: every part (cloud, idp, edge) in one process, on one data directory.

Start order: data directory -> root key, CA, store -> cloud and idp listeners (their ports are
needed by the configuration) -> configuration -> federation bootstrap -> edge -> ``run.json``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import fcntl
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from latchkey.clock import Clock, SystemClock
from latchkey.cloud.app import MAX_INFLIGHT, CloudApp, CloudSettings
from latchkey.cloud.audit import DEFAULT_TIMEOUT, AuditError, AuditLog
from latchkey.cloud.bootstrap import LOCAL_NAMES, bootstrap_federation, ensure_admin_key
from latchkey.cloud.kms.sweeper import KEY_JOBS, Sweeper
from latchkey.control.api import ControlApi
from latchkey.control.defaults import render_default_config
from latchkey.control.loader import load_config_paths
from latchkey.control.model import Config
from latchkey.control.runtime import (
    EventRecorder,
    RoutedApp,
    ensure_admin_token,
    make_explainer,
    provider_status,
)
from latchkey.control.service import ControlPlane
from latchkey.crypto.rootkey import RootKey
from latchkey.crypto.x509 import (
    CertificateAuthority,
    LeafCache,
    client_ssl_context,
    load_or_create_ca,
    server_ssl_context,
)
from latchkey.edge.cascope import outside, permitted_for
from latchkey.edge.credentials import CredentialCache
from latchkey.edge.server import Edge, EdgeSettings
from latchkey.edge.trust import TrustVerifier
from latchkey.edge.upstream import UpstreamPool
from latchkey.http.server import HttpServer
from latchkey.idp.app import DeferredIdpApp, IdpApp
from latchkey.idp.issuer import Issuer, check_issuer_url
from latchkey.idp.keyring import Keyring, KeyringError
from latchkey.issuerkeys import JwksFetcher
from latchkey.rootkey_source import RootKeyError, RootKeySource, open_root_key
from latchkey.secretfile import private_dir
from latchkey.store.control import ControlStore
from latchkey.store.sqlite import SqliteStore

log = logging.getLogger("latchkey")

ACCOUNT = "000000000000"
RUN_FILE = "run.json"
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class StartupError(Exception):
    """A clear, user-facing reason the node cannot start."""


@dataclass(frozen=True, slots=True)
class Listen:
    edge: tuple[str, int] = ("127.0.0.1", 8000)
    cloud: tuple[str, int] = ("127.0.0.1", 4566)
    idp: tuple[str, int] = ("127.0.0.1", 8443)
    cloud_http: tuple[str, int] | None = None  # the cloud over plain HTTP (loopback, sidecars)
    transparent: tuple[tuple[str, int], ...] = ()  # the edge for iptables REDIRECT (Linux)


@dataclass(frozen=True, slots=True)
class IdpOptions:
    issuer: str | None = None  # the external issuer URL; default https://<idp listen address>
    algorithm: str | None = None  # ES256 | RS256; default: the keyring's (ES256 when new)


@dataclass(frozen=True, slots=True)
class DataPaths:
    root: Path

    @property
    def root_key(self) -> Path:
        return self.root / "root.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca-key.pem"

    @property
    def store(self) -> Path:
        return self.root / "latchkey.db"

    @property
    def audit(self) -> Path:
        return self.root / "audit" / "cloud.jsonl"

    @property
    def run(self) -> Path:
        return self.root / RUN_FILE

    @property
    def control(self) -> Path:
        return self.root / "control.db"

    @property
    def lock(self) -> Path:
        return self.root / "latchkey.lock"

    @property
    def default_config(self) -> Path:
        return self.root / "config.default.yaml"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What ``status`` and ``env`` need: written to ``run.json`` (no secrets)."""

    pid: int
    data_dir: str
    edge: str  # http://host:port (the proxy)
    cloud: str  # https://host:port
    idp: str  # the issuer URL (what tokens carry as iss)
    ca_bundle: str
    config: str
    started: str = ""
    idp_listen: str = ""  # https://host:port the idp listens on (status probes it)
    providers: list[str] = field(default_factory=list)  # aws-sts-federation providers
    extra: dict[str, str] = field(default_factory=dict)
    cloud_http: str = ""  # http://host:port when the plain-HTTP cloud listener is on
    transparent: list[str] = field(default_factory=list)  # host:port the REDIRECT rules target

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, data_dir: Path) -> RunInfo:
        doc = json.loads((data_dir / RUN_FILE).read_text())
        return cls(**doc)


def _url(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lock_data_dir(paths: DataPaths) -> int:
    """An exclusive lock on the data directory, held while the node runs (its file descriptor;
    closing it releases the lock, as the process ending does). A second node on the same
    directory would fork the audit chain and write the stores behind the first one's caches:
    it is refused before it touches anything."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StartupError(
            f"another latchkey is running on {paths.root} (it holds {paths.lock}); stop it "
            "first, or give this one another --data-dir"
        ) from None
    return fd


def prepare_data_dir(path: Path) -> DataPaths:
    os.umask(0o077)  # every file this process writes is private to its user
    private_dir(path)
    return DataPaths(path)


class Node:
    def __init__(
        self,
        data_dir: Path,
        *,
        config_paths: list[Path] | None = None,
        listen: Listen | None = None,
        clock: Clock | None = None,
        idp: IdpOptions | None = None,
        root_key_source: RootKeySource | None = None,
        audit_timeout: float = DEFAULT_TIMEOUT,
        ca_permit: Sequence[str] = (),
        leaf_lifetime: dt.timedelta = dt.timedelta(days=1),
        edge_settings: EdgeSettings | None = None,
        cloud_max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self.paths = prepare_data_dir(data_dir)
        self.cloud_max_inflight = cloud_max_inflight  # cloud calls at once; beyond, throttled
        self.ca_permit = tuple(ca_permit)  # extra names a CA created now may certify
        self.leaf_lifetime = leaf_lifetime
        self.edge_settings = edge_settings or EdgeSettings()
        self.audit_timeout = audit_timeout  # seconds a call waits for its audit event
        self.root_key_source = root_key_source or RootKeySource.file()
        self.config_paths = config_paths or []
        self.listen = listen or Listen()
        self.clock = clock or SystemClock()
        self.idp_options = idp or IdpOptions()
        self._servers: list[HttpServer] = []
        self._edge: Edge | None = None
        self._store: SqliteStore | None = None
        self.sweeper: Sweeper | None = None  # KMS deletions, rotations, expiries
        self._audit: AuditLog | None = None
        self.config: Config | None = None
        self.control_store: ControlStore | None = None
        self.control: ControlPlane | None = None
        self._events: EventRecorder | None = None
        self.info: RunInfo | None = None
        self.credentials: CredentialCache | None = None
        self.issuer: Issuer | None = None
        self.keyring: Keyring | None = None
        self.store: SqliteStore | None = None
        self.root_key: RootKey | None = None
        self._preload_stop = threading.Event()
        self._preload: threading.Thread | None = None
        self._lock: int | None = None  # the data directory's lock, while started

    async def _load_secrets(
        self, config: Config | None
    ) -> tuple[RootKey, CertificateAuthority, Keyring]:
        now = self.clock.now()
        try:  # scrypt takes a moment: not on the event loop
            root_key = await asyncio.to_thread(
                open_root_key, self.paths.root, self.root_key_source, store=self.paths.store
            )
        except RootKeyError as exc:
            raise StartupError(f"root key: {exc}") from None
        try:
            ca = load_or_create_ca(
                self.paths.ca_cert,
                self.paths.ca_key,
                now=now,
                permitted=permitted_for([config], self.ca_permit),
            )
        except ValueError as exc:
            raise StartupError(f"CA: {exc}") from None
        try:
            if self.idp_options.issuer is not None:
                check_issuer_url(self.idp_options.issuer)
            # RSA key generation takes a while: not on the event loop.
            keyring = await asyncio.to_thread(
                Keyring.open, self.paths.root, self.clock, self.idp_options.algorithm
            )
        except (ValueError, KeyringError) as exc:
            raise StartupError(f"idp: {exc}") from None
        return root_key, ca, keyring

    async def _bind(self, server: HttpServer, where: tuple[str, int], part: str) -> tuple[str, int]:
        try:
            bound = await server.start(*where)
        except OSError as exc:
            raise StartupError(self._bind_message(exc, where, part)) from None
        self._servers.append(server)
        return bound

    @staticmethod
    def _bind_message(exc: OSError, where: tuple[str, int], part: str) -> str:
        if exc.errno == errno.EADDRINUSE:
            why = "the address is already in use (is another latchkey running?)"
        else:
            why = exc.strerror or str(exc)
        return f"cannot listen on {where[0]}:{where[1]} for the {part}: {why}"

    async def start(self) -> RunInfo:
        self._lock = lock_data_dir(self.paths)
        given = None
        if self.config_paths:  # a bad file stops us before anything is touched
            given = load_config_paths(self.config_paths)
        root_key, ca, keyring = await self._load_secrets(given)
        self.keyring = keyring
        now = self.clock.now()
        leaf_cert, leaf_key = ca.mint_leaf(
            list(LOCAL_NAMES), now=now, lifetime=dt.timedelta(days=30)
        )
        local_tls = server_ssl_context(leaf_cert, leaf_key)
        verify_ctx = client_ssl_context([self.paths.ca_cert])

        self._store = SqliteStore(self.paths.store)
        self._preload = threading.Thread(
            target=self._preload_keys, args=(self._store,), name="key-preload", daemon=True
        )
        self._preload.start()
        try:
            self._audit = AuditLog(
                self.paths.audit, timeout=self.audit_timeout, now=now.timestamp()
            )
        except AuditError as exc:
            raise StartupError(f"audit trail: {exc}") from None
        admin = ensure_admin_key(self._store, root_key, self.paths.root, ACCOUNT)
        log.info(
            "cloud admin access key %s (secret in %s)", admin.access_key_id, "cloud-admin.json"
        )

        self.sweeper = Sweeper(self._store, root_key, self.clock, jobs=KEY_JOBS, audit=self._audit)
        self.sweeper.start()
        cloud_app = CloudApp(
            store=self._store,
            root_key=root_key,
            clock=self.clock,
            audit=self._audit,
            jwks=JwksFetcher(verify_ctx),
            settings=CloudSettings(account=ACCOUNT, max_inflight=self.cloud_max_inflight),
        )
        cloud = await self._bind(
            HttpServer(cloud_app, ssl_context=local_tls), self.listen.cloud, "cloud"
        )
        cloud_http: tuple[str, int] | None = None
        if self.listen.cloud_http is not None:
            # The same app without TLS (SigV4 still required): for sidecars and benchmarks.
            if not _is_loopback(self.listen.cloud_http[0]):
                log.warning(
                    "the plain-HTTP cloud listener on %s is not loopback-only: requests, "
                    "plaintexts and data keys cross the network unencrypted",
                    self.listen.cloud_http[0] or "every address",
                )
            cloud_http = await self._bind(
                HttpServer(cloud_app), self.listen.cloud_http, "cloud (plain HTTP)"
            )
        # The default issuer URL is fixed by the port; bind first, then build the issuer.
        idp_app = DeferredIdpApp()
        idp = await self._bind(HttpServer(idp_app, ssl_context=local_tls), self.listen.idp, "idp")
        idp_host = WILDCARD_HOSTS.get(self.listen.idp[0], self.listen.idp[0])
        idp_listen = _url("https", idp_host, idp[1])
        issuer = Issuer(self.idp_options.issuer or idp_listen, keyring, self.clock)
        self.control_store = ControlStore(self.paths.control)
        control = self.control = ControlPlane(self.control_store)
        trust = TrustVerifier(self.clock, verify_ctx)
        api = ControlApi(
            control,
            self.control_store,
            ensure_admin_token(self.paths.root),
            make_explainer(lambda: control.config, trust, self.clock),
            status_of=lambda obj: provider_status(obj, issuer.url),
        )
        idp_app.target = RoutedApp(api, IdpApp(issuer))
        self.issuer = issuer
        self.store = self._store
        self.root_key = root_key

        config = control.start(
            config_paths=self.config_paths, default_text=render_default_config(*cloud)
        )
        self.paths.default_config.write_text(render_default_config(*cloud))
        config_source = control.origin
        self.config = config
        store = self._store

        def converge(new: Config) -> None:
            self.config = new
            for server in new.server_workloads:
                if server.forward_tls and not server.tls_verify:
                    log.warning(
                        "server workload %s: the upstream's TLS certificate is NOT verified "
                        "(forward.tlsVerification: none)",
                        server.name,
                    )
            for name, host in outside(ca, new):
                log.error(
                    "server workload %s: the latchkey CA's name constraints do not cover %s; "
                    "clients will reject its certificate (see `latchkey ca`)",
                    name,
                    host,
                )
            for made in bootstrap_federation(
                store, new, account=ACCOUNT, cloud=cloud, issuer_url=issuer.url
            ):
                log.info("local cloud: set up %s", made)
            if self.credentials is not None:
                # Credentials of a changed or removed provider (another role, audience,
                # endpoint...) or of a removed client are never served again.
                self.credentials.retain(new)

        converge(config)
        control.on_change(converge)
        self._events = EventRecorder(
            self.control_store, self.paths.root / "events" / "access.jsonl"
        )
        self._events.start()

        self.credentials = CredentialCache(issuer.workload_token, self.clock, verify_ctx)
        self._edge = Edge(
            config=lambda: control.config,
            trust=trust,
            events=self._events,
            leaves=LeafCache(ca, now=self.clock.now, lifetime=self.leaf_lifetime),
            credentials=self.credentials,
            upstream=UpstreamPool(
                verify_ctx,
                connect_timeout=self.edge_settings.connect_timeout,
                response_timeout=self.edge_settings.response_timeout,
            ),
            settings=self.edge_settings,
            clock=self.clock,
        )
        if not _is_loopback(self.listen.edge[0]) and self.edge_settings.passthrough == "tunnel":
            log.warning(
                "the edge on %s is not loopback-only and tunnels every host that is no server "
                "workload (--passthrough tunnel): whoever reaches it can reach what this machine "
                "reaches, its own loopback services included; consider --passthrough deny",
                self.listen.edge[0] or "every address",
            )
        try:
            edge = await self._edge.start(*self.listen.edge)
        except OSError as exc:
            raise StartupError(self._bind_message(exc, self.listen.edge, "edge")) from None
        transparent: list[str] = []
        for where in self.listen.transparent:
            try:
                bound = await self._edge.start_transparent(*where)
            except OSError as exc:
                raise StartupError(self._bind_message(exc, where, "transparent edge")) from None
            transparent.append(_url("tcp", *bound).removeprefix("tcp://"))

        self.info = RunInfo(
            pid=os.getpid(),
            data_dir=str(self.paths.root.resolve()),
            edge=_url("http", *edge),
            cloud=_url("https", *cloud),
            idp=issuer.url,
            ca_bundle=str(self.paths.ca_cert.resolve()),
            config=config_source,
            started=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            idp_listen=idp_listen,
            providers=[
                p.name for p in config.credential_providers if p.type == "aws-sts-federation"
            ],
            cloud_http=_url("http", *cloud_http) if cloud_http else "",
            transparent=transparent,
        )
        self.paths.run.write_text(self.info.to_json())
        self.paths.run.chmod(0o644)
        log.info("edge  %s (HTTPS_PROXY)", self.info.edge)
        for address in transparent:
            log.info("edge  %s (transparent: iptables REDIRECT target)", address)
        log.info("cloud %s (KMS, IAM, STS)", self.info.cloud)
        if self.info.cloud_http:
            log.info("cloud %s (plain HTTP, same app)", self.info.cloud_http)
        key = keyring.signing_key()
        log.info("idp   %s (OIDC issuer, %s key %s)", self.info.idp, key.algorithm, key.kid)
        return self.info

    def _preload_keys(self, store: SqliteStore) -> None:
        """The KMS keys' records and material into memory, beside the start: a node with
        100,000 keys answers its first call on each from memory, as its later ones."""
        started = time.monotonic()
        count = store.preload_kms_keys(self._preload_stop)
        if count:
            log.info("cloud: %d keys read into memory in %.1f s", count, time.monotonic() - started)

    async def stop(self) -> None:
        if self._lock is None:  # not started (another node holds the directory): touch nothing
            return
        self._preload_stop.set()
        if self._preload is not None:
            await asyncio.to_thread(self._preload.join, 10.0)
        if self.sweeper is not None:  # before the store closes
            await self.sweeper.stop()
        if self._edge is not None:
            await self._edge.close()
        if self._events is not None:
            await self._events.close()
        for server in self._servers:
            await server.close()
        if self.paths.run.exists():
            self.paths.run.unlink()
        if self._audit is not None:
            self._audit.close()
        if self._store is not None:
            self._store.close()
        if self.control_store is not None:
            self.control_store.close()
        os.close(self._lock)  # the last: the directory is free for the next node
        self._lock = None
