"""Which region and service an AWS endpoint name is for (pure).

An unsigned request carries no credential scope, so the edge reads it from the host the request
is sent to: ``kms.us-east-1.amazonaws.com`` is (us-east-1, kms). Endpoint names are irregular
(bucket labels, dual-stack and FIPS variants, global endpoints, services whose signing name is
not their endpoint prefix); a name that does not say both for sure gives None, and the caller
asks the client to sign with placeholder keys instead of guessing.
"""

from __future__ import annotations

import re

_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+")
# DNS suffix -> the region its global endpoints (iam.amazonaws.com) sign for; None: it has none
# (the dual-stack suffixes that services other than S3 use).
_SUFFIXES: tuple[tuple[str, str | None], ...] = (
    (".amazonaws.com.cn", "cn-northwest-1"),
    (".amazonaws.com", "us-east-1"),
    (".api.amazonwebservices.com.cn", None),
    (".api.aws", None),
)
# Global endpoints (no region label: they sign for the suffix's region), by their labels.
_GLOBAL = {
    name: name
    for name in ("iam", "sts", "s3", "route53", "cloudfront", "waf", "budgets", "savingsplans")
} | {"global.health": "health"}
_GOV_GLOBAL = "us-gov"  # iam.us-gov.amazonaws.com, route53.us-gov.amazonaws.com
_QUALIFIERS = frozenset({"dualstack", "fips"})  # s3.dualstack.eu-west-1, s3-fips.dualstack...
# Endpoint prefixes (the labels before the region) whose signing name is not their last label:
# from botocore's service models (a unit test keeps this in step with them).
# fmt: off
_SIGNING_NAMES = {
    "s3-accesspoint": "s3", "s3-control": "s3",
    "account-access-runtime": "account-access", "agent-registry-control": "agent-registry",
    "appconfigdata": "appconfig", "appstream2": "appstream", "bedrock-agent": "bedrock",
    "bedrock-agent-runtime": "bedrock", "bedrock-agentcore-control": "bedrock-agentcore",
    "bedrock-data-automation": "bedrock", "bedrock-data-automation-runtime": "bedrock",
    "bedrock-runtime": "bedrock", "cassandra-streams": "cassandra", "cloudhsmv2": "cloudhsm",
    "cloudsearchdomain": "cloudsearch", "cloudwatch-omni": "cloudwatch",
    "contact-lens": "connect", "participant.connect": "execute-api", "eventsv2": "events",
    "forecastquery": "forecast", "iam-toolbox": "iam", "identity-chime": "chime",
    "media-pipelines-chime": "chime", "meetings-chime": "chime", "messaging-chime": "chime",
    "voice-chime": "chime", "data-ats.iot": "iotdata", "data.jobs.iot": "iot-jobs-data",
    "api.tunneling.iot": "IoTSecuredTunneling", "ivsrealtime": "ivs", "models-v2-lex": "lex",
    "runtime-v2-lex": "lex", "email": "ses", "mail-manager": "ses",
    "agreement-marketplace": "aws-marketplace", "catalog.marketplace": "aws-marketplace",
    "deployment-marketplace": "aws-marketplace", "discovery-marketplace": "aws-marketplace",
    "entitlement.marketplace": "aws-marketplace", "metering.marketplace": "aws-marketplace",
    "reporting-marketplace": "aws-marketplace", "memory-db": "memorydb",
    "migrationhub-config": "mgh", "partnercentral-prm": "partnercentral",
    "personalize-events": "personalize", "personalize-runtime": "personalize",
    "pinpoint": "mobiletargeting", "sms-voice.pinpoint": "sms-voice",
    "servicecatalog-appregistry": "servicecatalog", "data-signer": "signer",
    "oidc": "sso-oauth", "portal.sso": "awsssoportal",
}
# fmt: on


def _signing_name(labels: list[str]) -> str | None:
    """The signing name of the labels before the region: the longest known endpoint prefix
    they end with, else the last label (bucket and access point labels come before it)."""
    while labels and labels[-1] in _QUALIFIERS:
        labels = labels[:-1]
    if not labels:
        return None
    labels = [*labels[:-1], labels[-1].removesuffix("-fips")]  # kms-fips.us-east-1
    for start in range(len(labels)):
        known = _SIGNING_NAMES.get(".".join(labels[start:]))
        if known is not None:
            return known
    last = labels[-1]
    # bucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2, s3express-control.us-west-2
    return "s3express" if last.startswith("s3express-") else last or None


def host_scope(host: str) -> tuple[str, str] | None:
    """(region, service) an unsigned request to this AWS endpoint name must be signed for;
    None unless the name says both for sure (not an AWS name, S3 Transfer Acceleration, ...).

    ``<labels>.<service>[.dualstack|.fips].<region>[.vpce].<suffix>``, ``<service>-fips``,
    ``[<bucket>.]s3-<region>`` (S3's legacy names), global endpoints (``iam.amazonaws.com``).
    ``host`` is lowercase, without port or trailing dot."""
    name = host
    found = next(((s, r) for s, r in _SUFFIXES if name.endswith(s)), None)
    if found is None:
        return None
    suffix, global_region = found
    labels = name[: -len(suffix)].split(".")
    if labels[-1] == "vpce":  # <vpce-id>.kms.us-east-1.vpce.amazonaws.com
        labels = labels[:-1]
    if not labels:
        return None
    if _REGION.fullmatch(labels[-1]):
        service = _signing_name(labels[:-1])
        return (labels[-1], service) if service is not None else None
    last = labels[-1].removesuffix("-fips")
    if last.startswith("s3-") and _REGION.fullmatch(last[3:]):  # [bucket.]s3-us-west-2
        return last[3:], "s3"
    if last == "s3-external-1":
        return "us-east-1", "s3"
    if global_region is None:
        return None
    if labels[-1] == _GOV_GLOBAL and len(labels) > 1:
        labels, global_region = labels[:-1], "us-gov-west-1"
    if labels[-1] == "s3":  # [bucket.]s3.amazonaws.com
        return global_region, "s3"
    service = _GLOBAL.get(".".join(label.removesuffix("-fips") for label in labels))
    return (global_region, service) if service is not None else None
