"""Who is calling: SigV4 verification against the store's access keys, into a ``Caller``."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace

from latchkey.aws import sigv4, sigv4verify
from latchkey.aws.errors import AwsError
from latchkey.clock import Clock
from latchkey.crypto.aead import InvalidCiphertext
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import AccessKeyRecord, Store

ACCESS_KEY_KIND = "access-key-secret"
GLOBAL_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated principal."""

    arn: str  # arn:aws:iam::ACCT:root | :user/[PATH/]NAME | arn:aws:sts::ACCT:assumed-role/R/S
    account: str
    access_key_id: str
    kind: str  # "root" | "user" | "session"
    role_arn: str | None = None
    session_context: dict[str, object] = field(default_factory=dict)
    source_ip: str | None = None  # the TCP peer (aws:SourceIp); set by the app
    # Per request, as the app knows them (``None``: not known, the condition key stays absent):
    region: str | None = None  # aws:RequestedRegion
    secure_transport: bool | None = None  # aws:SecureTransport: over TLS or not
    clock: Clock | None = field(default=None, compare=False, repr=False)  # aws:CurrentTime

    @property
    def principals(self) -> frozenset[str]:
        """Every identifier a policy ``Principal`` may name this caller by: its ARN, its role's
        ARN, and the unique id of its IAM user or role (stored trust policies name users and
        roles by unique id, as AWS's do: a re-created namesake is another principal)."""
        names = {self.arn}
        if self.role_arn:
            names.add(self.role_arn)
        if self.kind == "root":
            names.add(self.account)
        if self.unique_id is not None:
            names.add(self.unique_id)
        return frozenset(names)

    @property
    def unique_id(self) -> str | None:
        """The role id (``AROA...``) of a role session, the user id (``AIDA...``) of an IAM user
        or a session of one; ``None`` for the root user."""
        if self.kind == "root":
            return None
        value = self.session_context.get("role_id" if self.role_arn else "user_id")
        if not isinstance(value, str) or not value or value == self.account:
            return None  # a root GetSessionToken session records the account as its user id
        return value

    @property
    def is_root(self) -> bool:
        """The account root user, or a session of it (GetSessionToken): every action allowed."""
        return self.kind == "root" or self.arn == f"arn:aws:iam::{self.account}:root"

    @property
    def user_name(self) -> str | None:
        """The IAM user's name when the caller is an IAM user (or a session of one)."""
        parts = self.arn.split(":", 5)
        if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("user/"):
            return parts[5].rsplit("/", 1)[-1]
        return None

    @property
    def user_id(self) -> str:
        ctx = self.session_context
        if self.kind == "root":
            return self.account
        if isinstance(ctx.get("user_id"), str):  # IAM users and sessions of one
            return str(ctx["user_id"])
        return f"{ctx.get('role_id', '')}:{ctx.get('session_name', '')}"


@dataclass(frozen=True, slots=True)
class AuthErrors:
    """The error codes one protocol family uses for authentication failures."""

    unknown_key: tuple[str, int]
    bad_signature: tuple[str, int]
    incomplete: tuple[str, int]
    missing: tuple[str, int]
    expired_token: tuple[str, int]


JSON_AUTH_ERRORS = AuthErrors(
    unknown_key=("UnrecognizedClientException", 400),
    bad_signature=("InvalidSignatureException", 400),
    incomplete=("IncompleteSignatureException", 400),
    missing=("MissingAuthenticationTokenException", 400),
    expired_token=("ExpiredTokenException", 400),
)
QUERY_AUTH_ERRORS = AuthErrors(
    unknown_key=("InvalidClientTokenId", 403),
    bad_signature=("SignatureDoesNotMatch", 403),
    incomplete=("IncompleteSignature", 400),
    missing=("MissingAuthenticationToken", 403),
    expired_token=("ExpiredToken", 403),
)

#: AWS's words for a request with no signature at all, on every protocol.
UNSIGNED_MESSAGE = "Request is missing Authentication Token"
BAD_SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Credential:
    """An access key as a signed call needs it: its record, its secret, and who it is.
    Remembered until the store's next write (a status change, a deleted user or role)."""

    record: AccessKeyRecord
    secret: str
    caller: Caller  # without source_ip


class Authenticator:
    def __init__(self, store: Store, root_key: RootKey, clock: Clock) -> None:
        self._store = store
        self._root_key = root_key
        self._clock = clock

    def secret_for(self, record: AccessKeyRecord) -> str:
        try:
            secret = self._root_key.unwrap(
                ACCESS_KEY_KIND, record.access_key_id, record.wrapped_secret
            )
        except InvalidCiphertext:
            raise AwsError("InternalFailure", "stored credential is unreadable", 500) from None
        return secret.decode()

    def _credential(self, access_key_id: str) -> _Credential | None:
        record = self._store.load_access_key(access_key_id)
        if record is None:
            return None
        context = json.loads(record.session_context)
        return _Credential(
            record=record,
            secret=self.secret_for(record),
            caller=Caller(
                arn=record.principal_arn,
                account=record.principal_arn.split(":")[4],
                access_key_id=record.access_key_id,
                kind=record.kind,
                role_arn=record.role_arn,
                session_context=context if isinstance(context, dict) else {},
                clock=self._clock,
            ),
        )

    def authenticate(
        self,
        request: sigv4.HttpRequest,
        *,
        errors: AuthErrors,
        max_skew: dt.timedelta,
        service: str,
        source_ip: str | None = None,
        secure_transport: bool | None = None,
    ) -> Caller:
        def fail(pair: tuple[str, int], message: str) -> AwsError:
            return AwsError(pair[0], message, pair[1])

        try:
            info = sigv4verify.parse_signed_request(request)
        except sigv4.MissingAuthentication:
            raise fail(errors.missing, UNSIGNED_MESSAGE) from None
        except sigv4.UnsignedHeader as exc:
            raise fail(errors.bad_signature, str(exc)) from None
        except sigv4.SigV4Error as exc:
            raise fail(errors.incomplete, str(exc)) from None

        if info.scope.service != service:
            raise fail(
                errors.bad_signature,
                f"Credential should be scoped to correct service: '{service}'. ",
            )
        key_id = info.access_key
        credential = self._store.cached("credential", key_id, lambda: self._credential(key_id))
        if credential is None or credential.record.status != "Active":
            # An inactive key is refused exactly like an unknown one, as AWS does.
            raise fail(errors.unknown_key, "The security token included in the request is invalid.")
        record = credential.record
        now = self._clock.now()
        if record.kind == "session":
            token = info.session_token
            expected = record.session_token_sha256 or ""
            if token is None or not hmac.compare_digest(hash_session_token(token), expected):
                raise fail(
                    errors.unknown_key, "The security token included in the request is invalid."
                )
            if record.expiration is not None and now.timestamp() >= record.expiration:
                raise fail(
                    errors.expired_token, "The security token included in the request is expired"
                )
        elif info.session_token is not None:
            raise fail(errors.unknown_key, "The security token included in the request is invalid.")

        try:
            sigv4verify.check_request_time(info, now, max_skew=max_skew)
        except sigv4.SignatureExpired as exc:
            raise fail(errors.bad_signature, str(exc)) from None
        try:
            sigv4verify.verify_signature(request, info, credential.secret)
        except sigv4.SignatureMismatch:
            raise fail(errors.bad_signature, BAD_SIGNATURE_MESSAGE) from None

        caller = credential.caller
        if (
            service == "iam"
            and record.kind == "session"
            and record.role_arn is None
            and caller.session_context.get("mfa_authenticated") is not True
        ):
            # GetSessionToken credentials may call IAM only with MFA context (AWS answers
            # InvalidClientTokenId); latchkey has no MFA, so never.
            raise fail(errors.unknown_key, "The security token included in the request is invalid.")
        # IAM is a global service: AWS's aws:RequestedRegion for it is us-east-1.
        region = GLOBAL_REGION if service == "iam" else info.scope.region
        return self._store.cached(
            "caller",
            (info.access_key, source_ip, region, secure_transport),
            lambda: replace(
                caller, source_ip=source_ip, region=region, secure_transport=secure_transport
            ),
        )
