"""The wire shape of configuration documents, as pydantic models.

Field aliases are exactly the camelCase keys written in YAML, unknown keys are
rejected and validation is strict (``port: "443"`` is an error, not a coercion).
Each document model knows how to become its :mod:`latchkey.control.model` object.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import ssl
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publicsuffixlist import PublicSuffixList
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from latchkey.control import conditions, model
from latchkey.crypto.jwk import public_jwks_from_pem
from latchkey.http.h1 import HOP_BY_HOP

API_VERSION = "latchkey/v1"
KINDS = (
    "ServerWorkload",
    "CredentialProvider",
    "ClientWorkload",
    "AccessPolicy",
    "AccessCondition",
    "TrustProvider",
)

_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123, lowercase
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}")
_SESSION_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
# Headers the edge owns (framing, routing, hop-by-hop): never a place for a secret.
_RESERVED_HEADERS = HOP_BY_HOP | {"content-length", "host", "expect"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error a model validator raises about one of its fields (``field`` is the YAML key):
    the loader reports it at that key, or at the mapping when the key is absent."""
    return PydanticCustomError(
        "field_error", "{field}: {message}", {"field": field, "message": message}
    )


def is_name(value: str) -> bool:
    """Whether ``value`` is a valid object name (an RFC 1123 DNS label)."""
    return _DNS_LABEL.fullmatch(value) is not None


def check_name(value: str) -> str:
    """``value`` if it is a valid object name; ValueError naming it otherwise."""
    if not is_name(value):
        raise ValueError(
            f"invalid name {value!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _check_host(value: str) -> str:
    """Validate a DNS name, IP literal or ``*.`` wildcard; return it normalized."""
    host = model.normalize_host(value)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if value.startswith("[") and not isinstance(ip, ipaddress.IPv6Address):
        raise ValueError(f"invalid host {value!r}: only IPv6 literals go in brackets")
    if ip is not None:
        return ip.compressed
    if len(host) > 253:
        raise ValueError(f"invalid host {value!r}: longer than 253 characters")
    labels = host.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2 or _public_suffixes().is_public(".".join(labels)):
            raise ValueError(
                f"invalid host {value!r}: a wildcard must sit at least one label below a "
                f"public suffix (e.g. '*.example.com', not '*.com' or '*.co.uk')"
            )
    if not all(_DNS_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"invalid host {value!r}: not a DNS name or IP address{_idn_hint(host)}")
    return host


def _idn_hint(host: str) -> str:
    """For an internationalized name, its ASCII (``xn--``) form, which is what goes on the wire
    and what a client's CONNECT names."""
    if host.isascii():
        return ""
    try:
        ascii_form = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "; an internationalized name must be written in its ASCII (xn--) form"
    return f"; write an internationalized name in its ASCII form: {ascii_form!r}"


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The ICANN section of the Public Suffix List (shipped with the package, no network)."""
    return PublicSuffixList(only_icann=True)


def registrable_domain(host: str) -> str:
    """``kms.us-east-1.amazonaws.com`` -> ``amazonaws.com`` (ICANN suffixes); a name that is
    itself a public suffix, or has no known suffix, is returned as it is."""
    host = host.rstrip(".").lower()
    return _public_suffixes().privatesuffix(host) or host


def _check_role_arn(value: str) -> str:
    if not _ROLE_ARN.fullmatch(value):
        raise ValueError(
            f"invalid role ARN {value!r}: expected arn:aws:iam::<12 digits>:role/<name>"
        )
    return value


def _check_session_name(value: str) -> str:
    if not _SESSION_NAME.fullmatch(value):
        raise ValueError(
            f"invalid role session name {value!r}: use 2-64 of letters, digits and _+=,.@-"
        )
    return value


def _check_region(value: str) -> str:
    if not _REGION.fullmatch(value):
        raise ValueError(f"invalid region {value!r}: expected something like 'us-east-1'")
    return value


def _check_sts_endpoint(value: str) -> str:
    """An https URL, or plain http only when talking to the loopback interface."""
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"invalid URL {value!r}: {exc}") from None
    if not url.hostname or url.username or url.password or url.query or url.fragment:
        raise ValueError(f"invalid URL {value!r}: expected scheme://host[:port][/path]")
    if url.scheme == "https" or (url.scheme == "http" and url.hostname in _LOOPBACK):
        return value
    raise ValueError(
        f"invalid URL {value!r}: must be https (http only for 127.0.0.1, localhost, ::1)"
    )


def _parse_cidr(value: object) -> model.IPNetwork:
    """Parse an IPv4/IPv6 CIDR; a bare address is a /32 or /128. Host bits are an error."""
    if not isinstance(value, str):
        raise ValueError(f"expected a CIDR string such as '10.0.0.0/8', got {value!r}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        hint = ""
        if "host bits set" in str(exc):
            hint = f" (did you mean {ipaddress.ip_network(value, strict=False)}?)"
        raise ValueError(f"invalid CIDR {value!r}: {exc}{hint}") from None


def _check_ca_bundle(value: str) -> str:
    path = Path(value)
    if not path.is_absolute():
        raise ValueError(f"caBundle must be an absolute path (got {value!r})")
    if not path.is_file():
        raise ValueError(f"caBundle {value} is not a readable file")
    try:
        ssl.create_default_context(cafile=value)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"caBundle {value} holds no PEM certificate: {exc}") from None
    return value


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):  # (not echoed: it may be the secret, misplaced)
        raise ValueError("invalid header name: use letters, digits and !#$%&'*+-.^_`|~")
    if value.lower() in _RESERVED_HEADERS:
        raise ValueError(
            f"header {value!r} cannot carry a secret: it is a framing, routing or hop-by-hop header"
        )
    return value


# The values of secretFile and secretEnv are not echoed in errors: a secret written where its
# path or variable name belongs would otherwise reach the terminal, the API's answer and logs.


def _check_secret_file(value: str) -> str:
    if not os.path.isabs(value) or "\0" in value:
        raise ValueError("secretFile must be an absolute path")
    return value


def _check_secret_env(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError("secretEnv must be an environment variable name (letters, digits, _)")
    if not os.environ.get(value, "").strip():
        raise ValueError("the variable secretEnv names is not set (or is empty) for latchkey")
    return value


Name = Annotated[str, AfterValidator(check_name)]
Host = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
Cidr = Annotated[model.IPNetwork, PlainValidator(_parse_cidr)]
RoleArn = Annotated[str, AfterValidator(_check_role_arn)]
SessionDuration = Annotated[int, Field(ge=900, le=43200)]
StsEndpoint = Annotated[str, AfterValidator(_check_sts_endpoint)]
Region = Annotated[str, AfterValidator(_check_region)]
RoleSessionName = Annotated[str, AfterValidator(_check_session_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class Metadata(_Model):
    name: Name


class Forward(_Model):
    """Where the edge sends requests; every field defaults to the front-side value."""

    host: Host | None = None
    port: Port | None = None
    tls: bool | None = None
    tls_verification: Literal["full", "none"] = Field(default="full", alias="tlsVerification")
    ca_bundle: Annotated[str, AfterValidator(_check_ca_bundle)] | None = Field(
        default=None, alias="caBundle"
    )

    @model_validator(mode="after")
    def _bundle_needs_verification(self) -> Forward:
        if self.ca_bundle is not None and (self.tls is False or self.tls_verification == "none"):
            raise field_error("caBundle", "a CA bundle needs tls and tlsVerification: full")
        return self


class Authentication(_Model):
    method: Literal["http"]
    scheme: Literal["aws-sigv4", "bearer", "header", "basic", "none"]
    header: Annotated[str, AfterValidator(_check_header_name)] | None = None

    @model_validator(mode="after")
    def _header_for_scheme_header(self) -> Authentication:
        if self.scheme == "header" and self.header is None:
            raise field_error("header", "scheme header needs the name of the header to send "
                              "the secret in (e.g. header: X-Api-Key)")  # fmt: skip
        if self.scheme != "header" and self.header is not None:
            raise field_error("header", f"only scheme header takes a header (not {self.scheme})")
        return self


class ServerWorkloadSpec(_Model):
    host: Host
    port: Port
    tls: bool
    app_protocol: Literal["http"] = Field(default="http", alias="appProtocol")
    forward: Forward = Forward()
    authentication: Authentication


# The fields of each credential provider type (the YAML keys), for the per-type checks.
_FEDERATION_FIELDS = {
    "role_arn": "roleArn",
    "audience": "audience",
    "session_duration": "sessionDuration",
    "sts_endpoint": "stsEndpoint",
    "region": "region",
    "role_session_name": "roleSessionName",
}
_STATIC_FIELDS = {"secret_file": "secretFile", "secret_env": "secretEnv"}


class CredentialProviderSpec(_Model):
    type: Literal["aws-sts-federation", "static"]
    role_arn: RoleArn | None = Field(default=None, alias="roleArn")
    audience: Annotated[str, Field(min_length=1)] | None = None
    session_duration: SessionDuration = Field(default=3600, alias="sessionDuration")
    sts_endpoint: StsEndpoint | None = Field(default=None, alias="stsEndpoint")
    region: Region = "us-east-1"
    role_session_name: RoleSessionName | None = Field(default=None, alias="roleSessionName")
    secret_file: Annotated[str, AfterValidator(_check_secret_file)] | None = Field(
        default=None, alias="secretFile"
    )
    secret_env: Annotated[str, AfterValidator(_check_secret_env)] | None = Field(
        default=None, alias="secretEnv"
    )

    @model_validator(mode="after")
    def _fields_of_type(self) -> CredentialProviderSpec:
        given = self.model_fields_set
        if self.type == "static":
            foreign = [key for attr, key in _FEDERATION_FIELDS.items() if attr in given]
            if foreign:
                raise field_error(foreign[0], "a static credential provider takes only "
                                  "secretFile or secretEnv")  # fmt: skip
            if (self.secret_file is None) == (self.secret_env is None):
                field = "secretEnv" if self.secret_file is not None else "secretFile"
                raise field_error(field, "a static credential provider needs exactly one of "
                                  "secretFile, secretEnv")  # fmt: skip
            return self
        foreign = [key for attr, key in _STATIC_FIELDS.items() if attr in given]
        if foreign:
            raise field_error(foreign[0], f"an {self.type} credential provider takes no "
                              "secretFile or secretEnv (those are for type static)")  # fmt: skip
        for key, value in (("roleArn", self.role_arn), ("audience", self.audience)):
            if value is None:
                raise field_error(key, "missing required field")
        return self


class ProcessSpec(_Model):
    """Facts about the local calling process; every given one must hold."""

    exe: Annotated[str, Field(min_length=1)] | None = None
    uid: Annotated[int, Field(ge=0)] | None = None
    user: Annotated[str, Field(min_length=1)] | None = None
    cmdline: Annotated[str, Field(min_length=1)] | None = None
    exe_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = Field(
        default=None, alias="exeSha256"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> ProcessSpec:
        if all(v is None for v in (self.exe, self.uid, self.user, self.cmdline, self.exe_sha256)):
            raise ValueError("a process identity needs at least one of exe, uid, user, "
                             "cmdline, exeSha256")  # fmt: skip
        return self

    def to_domain(self) -> model.ProcessIdentity:
        return model.ProcessIdentity(
            exe=self.exe,
            uid=self.uid,
            user=self.user,
            cmdline=self.cmdline,
            exe_sha256=self.exe_sha256.lower() if self.exe_sha256 else None,
        )


class TokenSpec(_Model):
    """A JWT the caller presents, verified by a trust provider, with claim patterns."""

    trust_provider: Name = Field(alias="trustProvider")
    claims: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = {}

    def to_domain(self) -> model.TokenIdentity:
        return model.TokenIdentity(self.trust_provider, tuple(sorted(self.claims.items())))


class IdentitySpec(_Model):
    """Exactly one way of recognising the caller."""

    source_cidr: Cidr | None = Field(default=None, alias="sourceCidr")
    process: ProcessSpec | None = None
    token: TokenSpec | None = None
    hostname: Annotated[str, Field(min_length=1, max_length=253)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> IdentitySpec:
        kinds = (self.source_cidr, self.process, self.token, self.hostname)
        if sum(v is not None for v in kinds) != 1:
            raise ValueError("an identity has exactly one of: sourceCidr, process, token, hostname")
        return self

    def to_domain(self) -> model.Identity:
        if self.hostname is not None:
            return model.HostnameIdentity(self.hostname)
        if self.token is not None:
            return self.token.to_domain()
        if self.process is not None:
            return self.process.to_domain()
        assert self.source_cidr is not None
        return model.SourceCidr(self.source_cidr)


class ClientWorkloadSpec(_Model):
    identities: Annotated[list[IdentitySpec], Field(min_length=1)]


class AccessPolicySpec(_Model):
    clients: Annotated[list[Name], Field(min_length=1)]
    server: Name
    credential_provider: Name | None = Field(default=None, alias="credentialProvider")
    credential_providers: list[Name] | None = Field(default=None, alias="credentialProviders")
    trust_providers: list[Name] = Field(default=[], alias="trustProviders")
    conditions: list[Name] = []

    @model_validator(mode="after")
    def _one_provider_field(self) -> AccessPolicySpec:
        # Whether a provider is needed at all depends on the server's scheme: the loader
        # checks that (a server with scheme none needs none).
        if self.credential_provider is not None and self.credential_providers is not None:
            raise ValueError("give credentialProvider or credentialProviders, not both")
        if self.credential_providers is not None and not self.credential_providers:
            raise field_error("credentialProviders", "needs at least one name")
        return self

    @property
    def providers(self) -> list[str]:
        if self.credential_providers is not None:
            return self.credential_providers
        return [self.credential_provider] if self.credential_provider is not None else []


Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name like 'Europe/Berlin')"
        ) from None
    return value


def _every_day() -> list[Day]:
    return ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _check_range(value: str) -> str:
    conditions.parse_range(value)
    return value


class TimeWindowSpec(_Model):
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"
    days: Annotated[list[Day], Field(min_length=1)] = Field(default_factory=_every_day)
    hours: Annotated[list[Annotated[str, AfterValidator(_check_range)]], Field(min_length=1)]

    def to_domain(self) -> conditions.TimeWindow:
        return conditions.TimeWindow(
            timezone=self.timezone,
            days=frozenset(conditions.DAYS.index(d) for d in self.days),
            ranges=tuple(conditions.parse_range(h) for h in self.hours),
        )


_AWS_ACTION = re.compile(r"[a-z0-9-]+:[A-Za-z0-9*?]+")


def _check_action(value: str) -> str:
    if not _AWS_ACTION.fullmatch(value):
        raise ValueError(f"invalid AWS action {value!r}: expected service:Action, e.g. kms:Encrypt")
    return value


class AwsRuleSpec(_Model):
    actions: list[Annotated[str, AfterValidator(_check_action)]] = []
    keys: list[Annotated[str, Field(min_length=1)]] = []

    @model_validator(mode="after")
    def _not_empty(self) -> AwsRuleSpec:
        if not self.actions and not self.keys:
            raise ValueError("an aws rule needs actions, keys or both")
        return self


class AccessConditionSpec(_Model):
    time_window: TimeWindowSpec | None = Field(default=None, alias="timeWindow")
    aws: AwsRuleSpec | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> AccessConditionSpec:
        if self.time_window is None and self.aws is None:
            raise ValueError("an access condition needs timeWindow, aws or both")
        return self


class _Document(_Model):
    api_version: Literal["latchkey/v1"] = Field(alias="apiVersion")
    metadata: Metadata
    # Read-only, reported by `latchkey get`; accepted and ignored on apply (like kubectl).
    status: dict[str, object] | None = None


class ServerWorkloadDocument(_Document):
    kind: Literal["ServerWorkload"]
    spec: ServerWorkloadSpec

    def to_domain(self) -> model.ServerWorkload:
        spec, fwd = self.spec, self.spec.forward
        return model.ServerWorkload(
            name=self.metadata.name,
            host=spec.host,
            port=spec.port,
            tls=spec.tls,
            app_protocol=spec.app_protocol,
            forward_host=fwd.host if fwd.host is not None else spec.host,
            forward_port=fwd.port if fwd.port is not None else spec.port,
            forward_tls=fwd.tls if fwd.tls is not None else spec.tls,
            tls_verify=fwd.tls_verification == "full",
            ca_bundle=fwd.ca_bundle,
            auth_scheme=model.AuthScheme(spec.authentication.scheme),
            auth_header=spec.authentication.header,
        )


class CredentialProviderDocument(_Document):
    kind: Literal["CredentialProvider"]
    spec: CredentialProviderSpec

    def to_domain(self) -> model.CredentialProvider:
        spec = self.spec
        return model.CredentialProvider(
            name=self.metadata.name,
            type=spec.type,
            role_arn=spec.role_arn or "",
            audience=spec.audience or "",
            session_duration=spec.session_duration,
            sts_endpoint=spec.sts_endpoint,
            region=spec.region,
            role_session_name=spec.role_session_name,
            secret_file=spec.secret_file,
            secret_env=spec.secret_env,
        )


class ClientWorkloadDocument(_Document):
    kind: Literal["ClientWorkload"]
    spec: ClientWorkloadSpec

    def to_domain(self) -> model.ClientWorkload:
        identities = tuple(i.to_domain() for i in self.spec.identities)
        return model.ClientWorkload(name=self.metadata.name, identities=identities)


class AccessPolicyDocument(_Document):
    kind: Literal["AccessPolicy"]
    spec: AccessPolicySpec

    def to_domain(self) -> model.AccessPolicy:
        return model.AccessPolicy(
            name=self.metadata.name,
            clients=tuple(self.spec.clients),
            server=self.spec.server,
            credential_provider=next(iter(self.spec.providers), None),
            conditions=tuple(self.spec.conditions),
            credential_providers=tuple(self.spec.credential_providers or ()),
            trust_providers=tuple(self.spec.trust_providers),
        )


def _check_public_key(value: str) -> str:
    public_jwks_from_pem(value)  # ValueError says what is wrong
    return value


def _check_https_url(value: str) -> str:
    """An ``https://`` URL, even on loopback: a trust provider's tokens and keys are trusted
    only over verified HTTPS (an issuer, a ``jwksUrl``)."""
    if not value.startswith("https://"):
        raise ValueError(
            f"invalid URL {value!r}: must start with https:// (keys are only ever fetched "
            "over verified HTTPS, also on loopback)"
        )
    return _check_sts_endpoint(value)  # and well formed: https://host[:port][/path]


ProcessFact = Literal["exe", "uid", "cmdline", "exeSha256"]


class TrustProviderSpec(_Model):
    type: Literal["oidc", "process"]
    issuer: Annotated[str, AfterValidator(_check_https_url)] | None = None
    facts: list[ProcessFact] | None = None  # process: what must have been read from /proc
    jwks_url: Annotated[str, AfterValidator(_check_https_url)] | None = Field(
        default=None, alias="jwksUrl"
    )
    jwks: dict[str, list[dict[str, str | list[str]]]] | None = None
    public_key: Annotated[str, AfterValidator(_check_public_key)] | None = Field(
        default=None, alias="publicKey"
    )
    audiences: list[Annotated[str, Field(min_length=1)]] = []  # oidc: required, non-empty

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustProviderSpec:
        given = [v for v in (self.jwks_url, self.jwks, self.public_key) if v is not None]
        if len(given) > 1:
            raise ValueError("give at most one of jwksUrl, jwks, publicKey")
        if self.jwks is not None and not self.jwks.get("keys"):
            raise ValueError("jwks needs a non-empty 'keys' list")
        if self.type == "oidc" and (self.issuer is None or self.facts is not None):
            raise ValueError("an oidc trust provider needs issuer (and takes no facts)")
        if self.type == "oidc" and not self.audiences:
            raise field_error("audiences", "an oidc trust provider needs audiences (a non-empty "
                              "list; a token's aud must name one of them exactly)")  # fmt: skip
        if self.type == "process" and (self.issuer is not None or given or self.audiences):
            raise ValueError("a process trust provider takes only facts")
        return self


class TrustProviderDocument(_Document):
    kind: Literal["TrustProvider"]
    spec: TrustProviderSpec

    def to_domain(self) -> model.TrustProvider:
        spec = self.spec
        return model.TrustProvider(
            name=self.metadata.name,
            type=spec.type,
            issuer=spec.issuer or "",
            facts=tuple(spec.facts or ["exe", "uid"]) if spec.type == "process" else (),
            jwks_url=spec.jwks_url,
            jwks=public_jwks_from_pem(spec.public_key) if spec.public_key else spec.jwks,
            audiences=tuple(spec.audiences),
        )


class AccessConditionDocument(_Document):
    kind: Literal["AccessCondition"]
    spec: AccessConditionSpec

    def to_domain(self) -> conditions.AccessCondition:
        spec = self.spec
        return conditions.AccessCondition(
            name=self.metadata.name,
            time_window=spec.time_window.to_domain() if spec.time_window else None,
            aws=conditions.AwsRequestRule(tuple(spec.aws.actions), tuple(spec.aws.keys))
            if spec.aws
            else None,
        )


Document = (
    ServerWorkloadDocument
    | CredentialProviderDocument
    | ClientWorkloadDocument
    | AccessPolicyDocument
    | AccessConditionDocument
    | TrustProviderDocument
)

DOCUMENT_MODELS: dict[str, type[Document]] = {
    "ServerWorkload": ServerWorkloadDocument,
    "CredentialProvider": CredentialProviderDocument,
    "ClientWorkload": ClientWorkloadDocument,
    "AccessPolicy": AccessPolicyDocument,
    "AccessCondition": AccessConditionDocument,
    "TrustProvider": TrustProviderDocument,
}


class Envelope(_Model):
    """The part every document shares; used to report a bad ``kind``/``apiVersion``."""

    model_config = ConfigDict(extra="allow")
    api_version: Literal["latchkey/v1"] = Field(alias="apiVersion")
    kind: Literal[
        "ServerWorkload",
        "CredentialProvider",
        "ClientWorkload",
        "AccessPolicy",
        "AccessCondition",
        "TrustProvider",
    ]


def parse_document(data: object) -> Document:
    """Validate one decoded document; raises :class:`pydantic.ValidationError`."""
    kind = data.get("kind") if isinstance(data, dict) else None
    document_model = DOCUMENT_MODELS.get(kind) if isinstance(kind, str) else None
    if document_model is None:
        Envelope.model_validate(data)  # always fails: kind is missing or unknown
        raise AssertionError("unreachable: Envelope accepted an unknown kind")
    return document_model.model_validate(data)
