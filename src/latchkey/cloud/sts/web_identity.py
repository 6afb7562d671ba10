"""``AssumeRoleWithWebIdentity``: an OIDC JWT in, temporary role credentials out (unsigned).

Order: parameters (``ValidationError``) -> session policies (``MalformedPolicyDocument``,
``PackedPolicyTooLarge``) -> the token's ``iss`` names a registered provider -> its keys over
verified HTTPS (``IDPCommunicationError``) -> algorithm (our allow-list, then the issuer's
``id_token_signing_alg_values_supported``: ``IDPRejectedClaim``) -> signature -> claims
(``ExpiredTokenException`` past ``exp`` + 5 minutes, else ``InvalidIdentityToken``) -> the
role's trust policy (``AccessDenied``) -> duration -> credentials.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import (
    Decision,
    MalformedPolicyDocument,
    RequestContext,
    evaluate,
    parse_policy,
)
from latchkey.cloud.authz import KeyValue, request_time_keys
from latchkey.cloud.iam.common import provider_url_key
from latchkey.cloud.identity import GLOBAL_REGION
from latchkey.cloud.sts.common import (
    Call,
    Problems,
    check_session_policies,
    iso,
    policy_arns,
    refuse_unsupported,
    session_name,
    session_policy,
    session_policy_context,
    source_identity,
)
from latchkey.cloud.sts.session import assumed_role_user, issue_role_session, role_by_arn
from latchkey.crypto.jwt import (
    ALLOWED_ALGORITHMS,
    InvalidToken,
    check_claims,
    peek_claims,
    peek_header,
    verify_jwt,
)
from latchkey.issuerkeys import DiscoveryError, IssuerKeys, RefreshLimited
from latchkey.store.base import OidcProviderRecord

ACTION = "sts:AssumeRoleWithWebIdentity"
MAX_TOKEN_CHARS = 20_000
# AWS accepts a token up to five minutes past its exp (clock skew); nbf/iat get the same.
CLOCK_GRACE = dt.timedelta(minutes=5)
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
TAGS_CLAIM = "https://aws.amazon.com/tags"
NO_KEY = (
    "Couldn't retrieve verification key from your identity provider, please reference "
    "AssumeRoleWithWebIdentity documentation for requirements"
)
MESSAGES = {
    "malformed": "Couldn't parse the web identity token",
    "unsupported_alg": "The web identity token is not signed with a supported algorithm",
    "forbidden_header": "The web identity token names its own keys or critical extensions",
    "unknown_kid": NO_KEY,
    "bad_signature": "The web identity token's signature could not be verified",
    "bad_issuer": "Incorrect token issuer",
    "bad_audience": "Incorrect token audience",
    "not_yet_valid": "The web identity token is not valid yet",
    "missing_claim": "The web identity token is missing a required claim",
}
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _invalid(reason: str) -> AwsError:
    return AwsError("InvalidIdentityToken", MESSAGES.get(reason, MESSAGES["malformed"]))


def _shown(text: str) -> str:
    """Attacker-controlled text as it may appear in a message: short and printable."""
    return text[:256] if _PRINTABLE.fullmatch(text) else "(unprintable)"


def _provider(call: Call, token: str) -> tuple[str, OidcProviderRecord]:
    """The token's (unverified) ``iss`` and the registered provider it names."""
    try:
        issuer = peek_claims(token).get("iss")
    except InvalidToken:
        raise _invalid("malformed") from None
    if not isinstance(issuer, str) or not issuer:
        raise AwsError("InvalidIdentityToken", "The web identity token has no issuer")
    missing = AwsError(
        "InvalidIdentityToken",
        f"No OpenIDConnect provider found in your account for {_shown(issuer)}",
    )
    try:
        url_key = provider_url_key(issuer)
    except AwsError:
        raise missing from None
    prefix = f"arn:aws:iam::{call.account}:oidc-provider/"
    provider = call.store.load_oidc_provider(prefix + url_key)
    if provider is None and url_key.endswith("/"):
        # Providers registered before IAM kept a trailing "/" lost it: they still accept
        # their issuer's tokens (Auth0's issuers end with "/").
        provider = call.store.load_oidc_provider(prefix + url_key.rstrip("/"))
    if provider is None:
        raise missing
    # Only the registered spelling (or, for such an older provider, it and a "/") is ever
    # fetched: variants such as an upper-case host would otherwise each cost a discovery round
    # trip.
    if issuer not in (f"https://{provider.url}", f"https://{provider.url}/"):
        raise missing
    return issuer, provider


def _algorithm(token: str) -> str:
    """The token's ``alg``, when on our allow-list (never ``none``, never ``HS*``)."""
    try:
        alg = peek_header(token).get("alg")
    except InvalidToken:
        raise _invalid("malformed") from None
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise _invalid("unsupported_alg")
    return alg


def _check_algorithm(alg: str, keys: IssuerKeys) -> None:
    if keys.algorithms is not None and alg not in keys.algorithms:
        # The provider's own discovery document says it never signs with this algorithm.
        raise AwsError(
            "IDPRejectedClaim",
            f"The identity provider does not sign tokens with {alg} "
            "(id_token_signing_alg_values_supported)",
            403,
        )


async def _verified_claims(call: Call, token: str, issuer: str) -> dict[str, object]:
    alg = _algorithm(token)
    try:
        keys = await call.jwks.keys(issuer)
        _check_algorithm(alg, keys)
        try:
            return verify_jwt(token, keys.jwks)[1]
        except InvalidToken as exc:
            if exc.reason != "unknown_kid":
                raise
        fresh = await call.jwks.refresh(issuer)  # rate limited: None means not now
        if fresh is None:
            raise _invalid("unknown_kid")
        _check_algorithm(alg, fresh)
        return verify_jwt(token, fresh.jwks)[1]
    except RefreshLimited:
        raise _invalid("unknown_kid") from None
    except DiscoveryError as exc:
        raise AwsError("IDPCommunicationError", f"{NO_KEY}: {exc}") from None
    except InvalidToken as exc:
        raise _invalid(exc.reason) from None


def _check_claims(
    call: Call, claims: Mapping[str, object], issuer: str, client_ids: tuple[str, ...]
) -> None:
    now = call.clock.now()
    try:
        check_claims(
            claims, issuer=issuer, audiences=client_ids, now=now, leeway=CLOCK_GRACE,
            required=("sub",),
        )  # fmt: skip
    except InvalidToken as exc:
        if exc.reason == "expired":
            exp = claims.get("exp")
            # (check_claims refuses a non-finite exp as malformed; int(inf) would raise)
            shown = int(exp) if isinstance(exp, int | float) and math.isfinite(exp) else exp
            raise AwsError(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(now.timestamp())} must be before "
                f"the expiration date/time {shown}",
            ) from None
        raise _invalid(exc.reason) from None
    if TAGS_CLAIM in claims:
        raise AwsError(
            "InvalidIdentityToken", "Session tags in the web identity token are not supported"
        )


def _audiences(claims: Mapping[str, object]) -> list[str]:
    aud = claims.get("aud")
    items = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return [a for a in items if isinstance(a, str)]


def _condition_keys(
    call: Call,
    provider: OidcProviderRecord,
    claims: Mapping[str, object],
    session: str,
    source: str | None,
) -> dict[str, KeyValue]:
    """The trust policy's condition keys: the provider's (``<url>:aud``...), STS's, and the
    global ones a request has (time, source address, transport, region, the provider)."""
    url_key = provider.url
    keys: dict[str, KeyValue] = {
        f"{url_key}:aud": _audiences(claims),
        f"{url_key}:sub": str(claims["sub"]),
        "sts:RoleSessionName": session,
        "aws:FederatedProvider": provider.arn,
        **request_time_keys(call.clock),
    }
    amr = claims.get("amr")
    if isinstance(amr, str | list):
        keys[f"{url_key}:amr"] = [amr] if isinstance(amr, str) else [str(a) for a in amr]
    if source is not None:
        keys["sts:SourceIdentity"] = source
    if call.source_ip:
        keys["aws:SourceIp"] = call.source_ip
    if call.secure_transport is not None:
        keys["aws:SecureTransport"] = call.secure_transport
    keys["aws:RequestedRegion"] = call.region or GLOBAL_REGION
    return keys


def _note_verified(
    call: Call, provider: str, client_ids: Collection[str], claims: dict[str, Any]
) -> None:
    """Who a token whose signature verified names (its claims not checked yet), for the audit
    event of a call refused from here on."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        return
    audiences = _audiences(claims)
    audience = next((a for a in audiences if a in client_ids), audiences[0] if audiences else "")
    call.verified.update(provider=provider, audience=audience, subject=subject)


async def assume_role_with_web_identity(call: Call) -> dict[str, Any]:
    p = call.params
    refuse_unsupported(p)
    problems = Problems()
    role_arn = problems.text(p, "RoleArn", low=20, high=2048, required=True) or ""
    name = session_name(problems, p)
    token = problems.text(
        p, "WebIdentityToken", low=4, high=MAX_TOKEN_CHARS, required=True, show=False
    ) or ""  # fmt: skip
    duration = problems.number(p, "DurationSeconds", low=900, high=43200)
    policy = session_policy(problems, p)
    arns = policy_arns(problems, p)
    problems.raise_any()
    packed = check_session_policies(policy, arns)

    issuer, provider = _provider(call, token)
    claims = await _verified_claims(call, token, issuer)
    _note_verified(call, provider.arn, provider.client_ids, claims)
    _check_claims(call, claims, issuer, provider.client_ids)
    claimed = claims.get(SOURCE_IDENTITY_CLAIM)
    if claimed is not None and not isinstance(claimed, str):
        raise AwsError("InvalidIdentityToken", f"The {SOURCE_IDENTITY_CLAIM} claim is not a string")
    source = claimed if isinstance(claimed, str) else None
    source_identity(problems, source)
    problems.raise_any()

    denied = AwsError("AccessDenied", f"Not authorized to perform {ACTION}", 403)
    role = role_by_arn(call, role_arn)
    if role is None:
        raise denied
    try:
        trust = parse_policy(role.trust_policy, require_principal=True)
    except MalformedPolicyDocument:
        raise denied from None
    ctx = RequestContext(
        action=ACTION,
        resource=role.arn,
        principals=frozenset({provider.arn}),
        keys=_condition_keys(call, provider, claims, name, source),
    )
    if evaluate(trust, ctx) is not Decision.ALLOW:
        raise denied
    if source is not None:
        set_source = RequestContext(
            action="sts:SetSourceIdentity", resource=role.arn,
            principals=ctx.principals, keys=ctx.keys,
        )  # fmt: skip
        if evaluate(trust, set_source) is not Decision.ALLOW:
            raise AwsError("AccessDenied", "Not authorized to perform sts:SetSourceIdentity", 403)

    seconds = duration if duration is not None else 3600
    now = call.clock.now()
    user = assumed_role_user(call, role, name)
    subject = str(claims["sub"])
    audience = next((a for a in _audiences(claims) if a in provider.client_ids), "")
    context: dict[str, Any] = {
        "issued_by": "AssumeRoleWithWebIdentity",
        "role_id": role.role_id,
        "session_name": name,
        "web_identity": {
            "provider": provider.arn, "issuer": issuer, "sub": subject, "aud": audience,
        },
        "created": iso(now),
        **session_policy_context(policy, arns),
    }  # fmt: skip
    credentials = issue_role_session(
        call, role, user, seconds=seconds, context=context, source=source
    )
    return {
        "Credentials": credentials,
        "SubjectFromWebIdentityToken": subject,
        "AssumedRoleUser": user,
        "PackedPolicySize": packed,
        "Provider": provider.arn,
        "Audience": audience,
        "SourceIdentity": source,
    }
