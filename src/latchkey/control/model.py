"""Frozen domain objects built from validated configuration.

These are what the rest of latchkey (the edge proxy, the credential broker) works
with. They carry no YAML or pydantic baggage: :mod:`latchkey.control.loader` builds
them, everything else only reads them.
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from latchkey.control.conditions import AccessCondition

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AuthScheme(enum.Enum):
    """How the server workload expects requests to be authenticated."""

    AWS_SIGV4 = "aws-sigv4"
    BEARER = "bearer"
    HEADER = "header"
    BASIC = "basic"
    NONE = "none"


def normalize_host(host: str) -> str:
    """Canonical form of a host for comparisons.

    Lower-cased, one trailing dot removed, IPv6 brackets removed and IPv6 literals
    compressed (``[::0001]`` -> ``::1``). Never raises; unparsable input is only
    lower-cased and stripped.
    """
    name = host.lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.endswith("."):
        name = name[:-1]
    if ":" in name:
        with contextlib.suppress(ValueError):
            name = ipaddress.IPv6Address(name).compressed
    return name


@dataclass(frozen=True, slots=True)
class ServerWorkload:
    """A service that clients call through the edge (for example AWS KMS).

    ``host`` is normalized (see :func:`normalize_host`) and may be a wildcard
    ``*.example.com`` matching exactly one extra label. ``forward_host`` defaults to
    ``host``; when that is a wildcard it means "the host the client asked for", which
    :meth:`upstream_host` resolves.
    """

    name: str
    host: str
    port: int
    tls: bool
    app_protocol: str
    forward_host: str
    forward_port: int
    forward_tls: bool
    tls_verify: bool
    auth_scheme: AuthScheme
    auth_header: str | None = None  # scheme ``header``: the header the secret is sent in
    ca_bundle: str | None = None  # PEM file trusted for the upstream, beside the system store

    @property
    def is_wildcard(self) -> bool:
        """Whether ``host`` is a ``*.`` wildcard pattern."""
        return self.host.startswith("*.")

    def matches(self, host: str, port: int) -> bool:
        """Whether a request for ``host:port`` is addressed to this workload.

        Host comparison ignores case and a trailing dot; a wildcard matches exactly
        one extra, non-empty label (``*.b.c`` matches ``a.b.c`` but not ``b.c`` or
        ``x.a.b.c``).
        """
        if port != self.port:
            return False
        wanted = normalize_host(host)
        if not self.is_wildcard:
            return wanted == self.host
        suffix = self.host[1:]  # ".b.c"
        if not wanted.endswith(suffix):
            return False
        label = wanted[: -len(suffix)]
        return bool(label) and "." not in label

    def upstream_host(self, requested_host: str) -> str:
        """Where to forward a request that was addressed to ``requested_host``."""
        if self.forward_host.startswith("*."):
            return normalize_host(requested_host)
        return self.forward_host


@dataclass(frozen=True, slots=True)
class CredentialProvider:
    """Where the credentials for a server workload come from.

    ``aws-sts-federation``: short-lived AWS keys (``role_arn`` .. ``role_session_name``).
    ``static``: one secret, from ``secret_file`` (re-read when it changes) or from the
    environment variable ``secret_env``; the value itself is never part of the configuration.
    """

    name: str
    type: str  # "aws-sts-federation" | "static"
    role_arn: str
    audience: str
    session_duration: int
    sts_endpoint: str | None
    region: str
    role_session_name: str | None
    secret_file: str | None = None
    secret_env: str | None = None

    def describe(self) -> str:
        """Where the credentials come from, for ``explain`` and tables (never a secret)."""
        if self.secret_file is not None:
            return f"static secret from file {self.secret_file}"
        if self.secret_env is not None:
            return f"static secret from environment variable {self.secret_env}"
        return f"role {self.role_arn}"


@dataclass(frozen=True, slots=True)
class SourceCidr:
    """Identity by network origin: the caller's address is inside ``network``."""

    network: IPNetwork

    def describe(self) -> str:
        return f"sourceCidr {self.network}"

    def matches(self, address: str) -> bool:
        """Whether ``address`` lies in the network.

        IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are compared as IPv4 against
        IPv4 networks, and IPv4 addresses as mapped IPv6 against IPv6 networks.
        Unparsable input is simply not a match.
        """
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except (ValueError, TypeError, AttributeError):
            return False
        if isinstance(self.network, ipaddress.IPv4Network):
            if isinstance(ip, ipaddress.IPv6Address):
                if ip.ipv4_mapped is None:
                    return False
                return ip.ipv4_mapped in self.network
            return ip in self.network
        if isinstance(ip, ipaddress.IPv4Address):
            ip = ipaddress.IPv6Address(f"::ffff:{ip}")
        return ip in self.network

    def check(self, evidence: Evidence) -> str | None:
        """None when the caller matches, else why not."""
        if self.matches(evidence.source_address):
            return None
        return f"source address {evidence.source_address} is not in {self.network}"


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What the kernel says about the local process behind a connection."""

    pid: int
    uid: int
    user: str
    exe: str
    cmdline: tuple[str, ...] = ()
    exe_sha256: str | None = None  # filled only when some identity asks for it


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """One trust provider's verdict on the token a caller presented."""

    claims: Mapping[str, object] | None = None  # verified claims, or
    error: str | None = None  # why the token was refused ("bad signature", "expired", ...)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything known about a caller when the edge decides who it is."""

    source_address: str
    process: ProcessFacts | None = None
    token_presented: bool = False
    tokens: Mapping[str, TokenCheck] = field(default_factory=dict)  # by trust provider
    hostname: str | None = None  # the caller's host name, when some identity asks for it


@dataclass(frozen=True, slots=True)
class HostnameIdentity:
    """Identity by the caller's host name (this machine's name for loopback callers, else the
    reverse lookup of the source address); a case-insensitive glob."""

    pattern: str

    def describe(self) -> str:
        return f"hostname {self.pattern}"

    def check(self, evidence: Evidence) -> str | None:
        if evidence.hostname is None:
            return f"the caller's host name is unknown (wanted {self.pattern})"
        if not fnmatch.fnmatchcase(evidence.hostname.lower(), self.pattern.lower()):
            return f"host name {evidence.hostname} does not match {self.pattern}"
        return None


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """Identity by a JWT the caller presents to the proxy, verified by a trust provider.

    ``claims`` are (name, pattern) pairs; a pattern is a glob (``fnmatch``, case sensitive)
    and a list-valued claim (``aud``) matches when any element does.
    """

    trust_provider: str
    claims: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        wanted = " ".join(f"{k}={v}" for k, v in self.claims)
        return f"token via {self.trust_provider}" + (f" ({wanted})" if wanted else "")

    def check(self, evidence: Evidence) -> str | None:
        if not evidence.token_presented:
            return "no token presented (Proxy-Authorization: Bearer, or the proxy URL's password)"
        result = evidence.tokens.get(self.trust_provider)
        if result is None or result.claims is None:
            why = result.error if result is not None and result.error else "not checked"
            return f"token refused by trust provider '{self.trust_provider}': {why}"
        for name, pattern in self.claims:
            if name not in result.claims:
                return f"token claim {name} is missing"
            value = result.claims[name]
            values = value if isinstance(value, list) else [value]
            if not any(fnmatch.fnmatchcase(str(v), pattern) for v in values):
                return f"token claim {name} {value!r} does not match {pattern!r}"
        return None


@dataclass(frozen=True, slots=True)
class TrustProvider:
    """Who may vouch for a caller's token: an OIDC issuer and where its keys are."""

    name: str
    type: str  # "oidc"
    issuer: str
    jwks_url: str | None = None  # default: the issuer's discovery document
    jwks: Mapping[str, object] | None = field(default=None, hash=False)  # inline keys
    audiences: tuple[str, ...] = ()  # when given, the token's aud must name one
    facts: tuple[str, ...] = ()  # type "process": the facts /proc must have given

    def attests(self, evidence: Evidence) -> str | None:
        """None when this provider vouches for the caller, else why it does not."""
        if self.type == "process":
            process = evidence.process
            if process is None:
                return f"trust provider '{self.name}': the calling process could not be read"
            missing = [
                fact
                for fact, value in (
                    ("exe", process.exe),
                    ("uid", process.uid >= 0),
                    ("cmdline", process.cmdline),
                    ("exeSha256", process.exe_sha256),
                )
                if fact in self.facts and not value
            ]
            if missing:
                return f"trust provider '{self.name}': no {', '.join(missing)} for the process"
            return None
        if not evidence.token_presented:
            return f"trust provider '{self.name}': no token presented"
        result = evidence.tokens.get(self.name)
        if result is None or result.claims is None:
            why = result.error if result is not None and result.error else "not checked"
            return f"trust provider '{self.name}': {why}"
        return None


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """Identity by the Linux process on the other end of a loopback connection.

    Every given field must hold: ``exe`` and ``cmdline`` are globs (``fnmatch``, case
    sensitive; the command line is its arguments joined by single spaces).
    """

    exe: str | None = None
    uid: int | None = None
    user: str | None = None
    cmdline: str | None = None
    exe_sha256: str | None = None

    def describe(self) -> str:
        given = [(k, getattr(self, k)) for k in ("exe", "uid", "user", "cmdline", "exe_sha256")]
        return "process " + " ".join(f"{k}={v}" for k, v in given if v is not None)

    def check(self, evidence: Evidence) -> str | None:
        facts = evidence.process
        if facts is None:
            return "the calling process could not be determined (not a local connection?)"
        if self.exe is not None and not fnmatch.fnmatchcase(facts.exe, self.exe):
            return f"executable {facts.exe or '?'} does not match {self.exe}"
        if self.uid is not None and facts.uid != self.uid:
            return f"uid {facts.uid} is not {self.uid}"
        if self.user is not None and facts.user != self.user:
            return f"user {facts.user} is not {self.user}"
        command = " ".join(facts.cmdline)
        if self.cmdline is not None and not fnmatch.fnmatchcase(command, self.cmdline):
            return f"command line does not match {self.cmdline}"
        if self.exe_sha256 is not None and facts.exe_sha256 != self.exe_sha256.lower():
            return f"executable sha256 {facts.exe_sha256 or '?'} is not {self.exe_sha256}"
        return None


Identity = SourceCidr | ProcessIdentity | TokenIdentity | HostnameIdentity
"""One way of recognising a client workload."""


@dataclass(frozen=True, slots=True)
class ClientWorkload:
    """A set of callers recognised by the identities they all present."""

    name: str
    identities: tuple[Identity, ...]

    def check(self, evidence: Evidence | str) -> str | None:
        """None when the caller satisfies every identity, else the first reason it does not."""
        if isinstance(evidence, str):
            evidence = Evidence(evidence)
        if not self.identities:
            return "it lists no identities"
        for identity in self.identities:
            why = identity.check(evidence)
            if why is not None:
                return why
        return None

    def matches(self, evidence: Evidence | str) -> bool:
        """Whether a caller (or a caller at an address) satisfies every identity."""
        return self.check(evidence) is None

    def matched_by(self) -> str:
        """What identified a caller as this client (for access events; never a secret)."""
        return "; ".join(i.describe() for i in self.identities)

    @property
    def needs_process(self) -> bool:
        return any(isinstance(i, ProcessIdentity) for i in self.identities)

    @property
    def needs_exe_sha256(self) -> bool:
        return any(
            isinstance(i, ProcessIdentity) and i.exe_sha256 is not None for i in self.identities
        )

    @property
    def needs_hostname(self) -> bool:
        return any(isinstance(i, HostnameIdentity) for i in self.identities)

    @property
    def trust_providers(self) -> frozenset[str]:
        return frozenset(i.trust_provider for i in self.identities if isinstance(i, TokenIdentity))


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Lets the named clients call ``server`` with credentials from a provider (none for a
    server whose scheme is ``none``)."""

    name: str
    clients: tuple[str, ...]
    server: str
    credential_provider: str | None  # the first (default) of credential_providers
    conditions: tuple[str, ...] = ()
    credential_providers: tuple[str, ...] = ()  # all of them, in order; empty: just the one
    trust_providers: tuple[str, ...] = ()  # when given, one of them must attest the caller

    def select_provider(self, placeholder: str | None) -> str | None:
        """The provider named by the client's placeholder (an AWS access key id, a bearer
        token, a header value or a basic user; case-insensitive), else the first one; None
        when the policy names no provider."""
        names = self.credential_providers or (
            (self.credential_provider,) if self.credential_provider else ()
        )
        if placeholder:
            for name in names:
                if name.lower() == placeholder.lower():
                    return name
        return names[0] if names else None


@dataclass(frozen=True, slots=True)
class Config:
    """A complete, cross-validated configuration."""

    server_workloads: tuple[ServerWorkload, ...]
    credential_providers: tuple[CredentialProvider, ...]
    client_workloads: tuple[ClientWorkload, ...]
    access_policies: tuple[AccessPolicy, ...]
    access_conditions: tuple[AccessCondition, ...] = ()
    trust_providers: tuple[TrustProvider, ...] = ()

    def trust_provider(self, name: str) -> TrustProvider:
        """The trust provider called ``name``; ``KeyError`` if there is none."""
        for provider in self.trust_providers:
            if provider.name == name:
                return provider
        raise KeyError(name)

    @property
    def token_trust_providers(self) -> frozenset[str]:
        """The trust providers some client workload's token identity names."""
        names: frozenset[str] = frozenset(t.name for t in self._policy_trust("oidc"))
        for client in self.client_workloads:
            names |= client.trust_providers
        return names

    def access_condition(self, name: str) -> AccessCondition:
        """The access condition called ``name``; ``KeyError`` if there is none."""
        for condition in self.access_conditions:
            if condition.name == name:
                return condition
        raise KeyError(name)

    def server_workload_for(self, host: str, port: int) -> ServerWorkload | None:
        """The workload serving ``host:port``; an exact host beats a wildcard."""
        wildcard: ServerWorkload | None = None
        for workload in self.server_workloads:
            if workload.matches(host, port):
                if not workload.is_wildcard:
                    return workload
                wildcard = wildcard or workload
        return wildcard

    def credential_provider(self, name: str) -> CredentialProvider:
        """The credential provider called ``name``; ``KeyError`` if there is none."""
        for provider in self.credential_providers:
            if provider.name == name:
                return provider
        raise KeyError(name)

    def client_workload(self, name: str) -> ClientWorkload:
        """The client workload called ``name``; ``KeyError`` if there is none."""
        for client in self.client_workloads:
            if client.name == name:
                return client
        raise KeyError(name)

    def clients_matching(self, evidence: Evidence | str) -> tuple[ClientWorkload, ...]:
        """Every client workload a caller (or a caller at an address) belongs to."""
        return tuple(c for c in self.client_workloads if c.matches(evidence))

    def _policy_trust(self, kind: str) -> list[TrustProvider]:
        names = {n for p in self.access_policies for n in p.trust_providers}
        return [t for t in self.trust_providers if t.name in names and t.type == kind]

    @property
    def needs_process(self) -> bool:
        """Whether any client workload or policy needs the calling process."""
        return any(c.needs_process for c in self.client_workloads) or bool(
            self._policy_trust("process")
        )

    @property
    def needs_exe_sha256(self) -> bool:
        return any(c.needs_exe_sha256 for c in self.client_workloads) or any(
            "exeSha256" in t.facts for t in self._policy_trust("process")
        )

    @property
    def needs_hostname(self) -> bool:
        return any(c.needs_hostname for c in self.client_workloads)

    def policies_for(self, server: str) -> tuple[AccessPolicy, ...]:
        """The access policies that grant access to the server workload ``server``."""
        return tuple(p for p in self.access_policies if p.server == server)


def empty_config() -> Config:
    """A configuration with nothing in it (the edge then denies everything)."""
    return Config((), (), (), ())
