"""Grants as KMS authorization sees them: which grant operations a key type admits, encryption
context constraints, grant tokens, and whether a grant allows a call that the key policy and
IAM did not.

A grant allows an operation when its grantee is the caller (the role of a role session, the
session itself, the IAM user, or the account root, bound to the identity's unique id when the
grant was made), its operations include the action, and its constraints hold for the request's
encryption context. It never overrides an explicit Deny (the caller checks that first), and the
caller's session policies limit it as they limit a key policy naming the role.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.cloud.identity import Caller
from latchkey.crypto.aead import InvalidCiphertext
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import KmsGrantRecord, KmsKeyRecord, Store

Pairs = tuple[tuple[str, str], ...]

# AWS's GrantOperation enum, in its order.
GRANT_OPERATIONS: tuple[str, ...] = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
    "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
    "DeriveSharedSecret", "Encapsulate", "Decapsulate",
)  # fmt: skip

_ANY_KEY = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})
_SYMMETRIC = frozenset(
    {"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
     "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo"}
)  # fmt: skip
_BY_USAGE: dict[str, frozenset[str]] = {
    "ENCRYPT_DECRYPT": frozenset(
        {"Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"}
    ),
    "SIGN_VERIFY": frozenset({"Sign", "Verify", "GetPublicKey"}),
    "GENERATE_VERIFY_MAC": frozenset({"GenerateMac", "VerifyMac"}),
    "KEY_AGREEMENT": frozenset({"DeriveSharedSecret", "GetPublicKey"}),
    "ENCAPSULATE_DECAPSULATE": frozenset({"Encapsulate", "Decapsulate", "GetPublicKey"}),
}

#: The grant operations that take an encryption context: the only ones a constraint limits.
CONTEXT_OPERATIONS = _SYMMETRIC

MAX_CONSTRAINT_PAIRS = 8
MAX_CONSTRAINT_CHARS = 384  # the pairs of one constraint, keys and values together
MAX_GRANT_TOKENS = 10
MAX_GRANT_TOKEN_CHARS = 8192
TOKEN_KIND = "kms-grant-token"  # noqa: S105  (a root-key wrap kind, not a secret)


def operations_for(record: KmsKeyRecord) -> frozenset[str]:
    """The grant operations the key supports (AWS's key type table)."""
    if record.key_spec == "SYMMETRIC_DEFAULT":
        return _ANY_KEY | _SYMMETRIC
    return _ANY_KEY | _BY_USAGE.get(record.key_usage, frozenset())


def parse_operations(value: object) -> tuple[str, ...]:
    """``Operations``: grant operations, each once, in the order given."""
    if value is None:
        raise validation_error("operations", None, "Member must not be null")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AwsError("SerializationException", "Operations must be a list of strings")
    unknown = [v for v in value if v not in GRANT_OPERATIONS]
    if unknown:
        raise validation_error(
            "operations",
            value,
            "Member must satisfy constraint: [Member must satisfy enum value set: "
            f"[{', '.join(GRANT_OPERATIONS)}]]",
        )
    if not value:
        raise validation_error("operations", value, "Member must have length greater than 0")
    ops = tuple(dict.fromkeys(value))
    if ops == ("CreateGrant",):
        raise AwsError(
            "ValidationException", "Grants must not contain only the CreateGrant operation."
        )
    return ops


def _context_map(value: object, member: str) -> Pairs:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise AwsError("SerializationException", f"{member} must map strings to strings")
    if len(value) > MAX_CONSTRAINT_PAIRS:
        raise AwsError(
            "ValidationException",
            f"{member} may contain at most {MAX_CONSTRAINT_PAIRS} encryption context pairs.",
        )
    if sum(len(k) + len(v) for k, v in value.items()) > MAX_CONSTRAINT_CHARS:
        raise AwsError(
            "ValidationException",
            f"The encryption context in {member} may not exceed {MAX_CONSTRAINT_CHARS} characters.",
        )
    return tuple(sorted(value.items()))


def _folded(pairs: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Encryption context pairs with their keys lower-cased: a grant constraint's key is not
    case sensitive, its value is."""
    return frozenset((key.lower(), value) for key, value in pairs)


@dataclass(frozen=True, slots=True)
class Constraints:
    """A grant's encryption context constraints (none, either or both)."""

    subset: Pairs | None = None
    equals: Pairs | None = None

    @classmethod
    def of(cls, grant: KmsGrantRecord) -> Constraints:
        return cls(grant.context_subset, grant.context_equals)

    @property
    def empty(self) -> bool:
        return self.subset is None and self.equals is None

    def holds(self, context: Mapping[str, str]) -> bool:
        """Whether a request's encryption context satisfies every constraint (any order; keys
        compared without case, values with it: AWS's GrantConstraints rule)."""
        given = _folded(context.items())
        if self.equals is not None and _folded(self.equals) != given:
            return False
        return self.subset is None or _folded(self.subset) <= given

    def as_strict_as(self, parent: Constraints) -> bool:
        """Whether every context these constraints admit, ``parent``'s admit too (a child grant
        made with a grant's CreateGrant permission); keys compared as ``holds`` does."""
        if parent.equals is not None and (
            self.equals is None or _folded(self.equals) != _folded(parent.equals)
        ):
            return False
        if parent.subset is None:
            return True
        required = _folded(parent.subset)
        return any(
            pairs is not None and required <= _folded(pairs) for pairs in (self.equals, self.subset)
        )

    def wire(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        if self.subset is not None:
            out["EncryptionContextSubset"] = dict(self.subset)
        if self.equals is not None:
            out["EncryptionContextEquals"] = dict(self.equals)
        return out

    def condition_keys(self) -> dict[str, Any]:
        """``kms:GrantConstraintType`` and the constraint's ``kms:EncryptionContext...`` keys,
        as CreateGrant offers them to policies."""
        if self.empty:
            return {}
        types = [name for name in self.wire()]
        context = dict(self.subset or ()) | dict(self.equals or ())
        keys: dict[str, Any] = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
        keys["kms:EncryptionContextKeys"] = sorted(context)
        keys["kms:GrantConstraintType"] = types[0] if len(types) == 1 else types
        return keys


def parse_constraints(value: object) -> Constraints:
    if value is None:
        return Constraints()
    if not isinstance(value, dict):
        raise AwsError("SerializationException", "Constraints must be a structure")
    if value.get("SourceArn") is not None:
        raise AwsError(
            "UnsupportedOperationException", "The SourceArn grant constraint is not supported."
        )
    subset = value.get("EncryptionContextSubset")
    equals = value.get("EncryptionContextEquals")
    return Constraints(
        None if subset is None else _context_map(subset, "EncryptionContextSubset"),
        None if equals is None else _context_map(equals, "EncryptionContextEquals"),
    )


# -- grant tokens ---------------------------------------------------------------------------
# A token is the grant id sealed by the root key for one account and region (a fresh nonce
# each time, so every CreateGrant answer carries a new token): opaque, and unforgeable.


def _token_record(account: str, region: str) -> str:
    return f"{account}/{region}"


def encode_grant_token(root_key: RootKey, account: str, region: str, grant_id: str) -> str:
    sealed = root_key.wrap(TOKEN_KIND, _token_record(account, region), bytes.fromhex(grant_id))
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def _invalid_token() -> AwsError:
    return AwsError("InvalidGrantTokenException", "Invalid grant token.")


def decode_grant_token(root_key: RootKey, account: str, region: str, token: object) -> str:
    """The grant id a token names; ``InvalidGrantTokenException`` unless it is one of ours."""
    if not isinstance(token, str) or not 1 <= len(token) <= MAX_GRANT_TOKEN_CHARS:
        raise _invalid_token()
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        grant_id = root_key.unwrap(TOKEN_KIND, _token_record(account, region), sealed)
    except (binascii.Error, ValueError, InvalidCiphertext):
        raise _invalid_token() from None
    if len(grant_id) != 32:
        raise _invalid_token()
    return grant_id.hex()


def check_grant_tokens(root_key: RootKey, account: str, region: str, value: object) -> None:
    """``GrantTokens`` of any request: at most ten, each a token this cloud issued. Grants
    here are effective at once, so a token adds no permission; it is only checked."""
    if value is None:
        return
    if not isinstance(value, list):
        raise AwsError("SerializationException", "GrantTokens must be a list of strings")
    if len(value) > MAX_GRANT_TOKENS:
        raise validation_error(
            "grantTokens",
            "...",
            f"Member must have length less than or equal to {MAX_GRANT_TOKENS}",
        )
    for token in value:
        decode_grant_token(root_key, account, region, token)


# -- grants in authorization ----------------------------------------------------------------


def unique_id(caller: Caller) -> str | None:
    """The role id of a role session, the user id of an IAM user (or its session)."""
    ctx = caller.session_context
    value = ctx.get("role_id" if caller.role_arn is not None else "user_id")
    return value if isinstance(value, str) else None


def grantee_is(grant: KmsGrantRecord, caller: Caller) -> bool:
    if grant.grantee_principal not in caller.principals:
        return False
    return grant.grantee_id is None or grant.grantee_id == unique_id(caller)


def request_context(keys: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
    """The encryption context the call was authorized with: its ``kms:EncryptionContext:``
    condition keys, or else the request's ``EncryptionContext``."""
    if "kms:EncryptionContextKeys" in keys:
        prefix = "kms:EncryptionContext:"
        return {k[len(prefix) :]: str(v) for k, v in keys.items() if k.startswith(prefix)}
    ctx = params.get("EncryptionContext")
    if isinstance(ctx, dict):
        return {str(k): str(v) for k, v in ctx.items()}
    return {}


def _grant_allows(
    grant: KmsGrantRecord, action: str, keys: Mapping[str, Any], params: Mapping[str, Any]
) -> bool:
    if action not in grant.operations:
        return False
    if action == "CreateGrant":  # only a subset of its own operations, as strict constraints
        wanted = parse_operations(params.get("Operations"))
        asked = parse_constraints(params.get("Constraints"))
        return set(wanted) <= set(grant.operations) and asked.as_strict_as(Constraints.of(grant))
    if action in CONTEXT_OPERATIONS:
        return Constraints.of(grant).holds(request_context(keys, params))
    return True


def allowed_by_grant(
    store: Store,
    caller: Caller,
    action: str,
    record: KmsKeyRecord,
    keys: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    session_allows: bool,
) -> bool:
    """Whether a grant on ``record`` allows the caller ``kms:<action>`` (policy said no, and
    no policy denied it explicitly)."""
    if action not in GRANT_OPERATIONS:
        return False
    for grant in store.list_kms_grants(record.key_id, grantees=sorted(caller.principals)):
        if not grantee_is(grant, caller):
            continue
        if not session_allows and not (
            caller.role_arn is not None and grant.grantee_principal == caller.arn
        ):
            continue  # session policies limit a grant to the role as they limit a key policy
        if _grant_allows(grant, action, keys, params):
            return True
    return False
