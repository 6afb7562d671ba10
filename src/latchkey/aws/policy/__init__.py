"""An AWS IAM-style policy engine shared by the local KMS, IAM and STS.

Rule: pure: documents in, decisions out. Nothing here performs I/O or reads the clock; a
request's time arrives as a condition key (``aws:CurrentTime``, ``aws:EpochTime``).

``parse_policy`` turns JSON text into a frozen ``PolicyDocument`` (or raises
``MalformedPolicyDocument``); ``evaluate`` / ``evaluate_all`` decide a ``RequestContext``.
"""

from latchkey.aws.policy.conditions import Condition
from latchkey.aws.policy.document import (
    Effect,
    MalformedPolicyDocument,
    PolicyDocument,
    Principal,
    Statement,
    parse_identity_policy,
    parse_policy,
    parse_trust_policy,
)
from latchkey.aws.policy.evaluate import (
    Decision,
    RequestContext,
    evaluate,
    evaluate_all,
    statement_matches,
)

__all__ = [
    "Condition",
    "Decision",
    "Effect",
    "MalformedPolicyDocument",
    "PolicyDocument",
    "Principal",
    "RequestContext",
    "Statement",
    "evaluate",
    "evaluate_all",
    "parse_identity_policy",
    "parse_policy",
    "parse_trust_policy",
    "statement_matches",
]
