"""Access conditions: time windows and AWS request rules, parsed and checked."""

from __future__ import annotations

import datetime as dt

import pytest

from latchkey.control.conditions import (
    AccessCondition,
    AwsRequestRule,
    RequestFacts,
    TimeWindow,
    parse_range,
)
from latchkey.control.loader import ConfigError, load_config_text

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEKDAYS_9_TO_5_BERLIN = TimeWindow("Europe/Berlin", frozenset(range(5)), ((540, 1020),))
NIGHT_SHIFT_TUESDAY = TimeWindow("UTC", frozenset({1}), ((22 * 60, 6 * 60),))


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        (WEEKDAYS_9_TO_5_BERLIN, "2026-11-30T08:30:00", True),  # Mon 09:30 CET
        (WEEKDAYS_9_TO_5_BERLIN, "2026-11-30T07:59:00", False),  # Mon 08:59 CET
        (WEEKDAYS_9_TO_5_BERLIN, "2026-11-30T16:00:00", False),  # Mon 17:00 CET: end exclusive
        (WEEKDAYS_9_TO_5_BERLIN, "2026-11-28T10:00:00", False),  # Saturday
        (WEEKDAYS_9_TO_5_BERLIN, "2026-07-06T07:30:00", True),  # Mon 09:30 CEST (summer time)
        (NIGHT_SHIFT_TUESDAY, "2026-12-01T23:00:00", True),  # Tue 23:00
        (NIGHT_SHIFT_TUESDAY, "2026-12-02T05:59:00", True),  # Wed 05:59, shift began Tue
        (NIGHT_SHIFT_TUESDAY, "2026-12-02T23:00:00", False),  # Wed 23:00
        (NIGHT_SHIFT_TUESDAY, "2026-12-01T05:00:00", False),  # Tue 05:00 belongs to Mon
    ],
)
def test_time_window(window: TimeWindow, moment: str, inside: bool) -> None:
    why = window.check(at(moment))
    assert (why is None) is inside
    if why is not None:
        assert "outside the time window" in why


@pytest.mark.parametrize(
    "bad",
    ["9-17", "09:00", "25:00-26:00", "09:00-09:00", "09:60-10:00",
     "\u0660\u0669:00-17:00", "0009:00-17:00", "09:00-1\uff17:00", "+9:00-17:00"],
)  # fmt: skip
def test_bad_ranges(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid time range"):
        parse_range(bad)


@pytest.mark.parametrize(
    ("rule", "action", "key", "allowed"),
    [
        (AwsRequestRule(actions=("kms:Encrypt",)), "kms:Encrypt", None, True),
        (AwsRequestRule(actions=("kms:Encrypt",)), "kms:Decrypt", None, False),
        (AwsRequestRule(actions=("kms:GenerateDataKey*",)), "kms:GenerateDataKeyPair", None, True),
        (AwsRequestRule(actions=("KMS:encrypt",)), "kms:Encrypt", None, True),
        (AwsRequestRule(actions=("kms:Encrypt",)), None, None, False),
        (AwsRequestRule(keys=("alias/app-*",)), "kms:Encrypt", "alias/app-1", True),
        (AwsRequestRule(keys=("alias/app-*",)), "kms:Encrypt", "alias/other", False),
        (AwsRequestRule(keys=("alias/app-*",)), "kms:Decrypt", None, False),
        (AwsRequestRule(keys=("alias/app-*",)), "kms:ListKeys", None, True),
    ],
)
def test_aws_rule(rule: AwsRequestRule, action: str | None, key: str | None, allowed: bool) -> None:
    assert (rule.check(action, key) is None) is allowed


DOCS = """\
apiVersion: latchkey/v1
kind: AccessCondition
metadata: {name: office-hours}
spec:
  timeWindow: {timezone: Europe/Berlin, days: [Mon, Tue, Wed, Thu, Fri], hours: ["09:00-17:00"]}
---
apiVersion: latchkey/v1
kind: AccessCondition
metadata: {name: encrypt-only}
spec:
  aws: {actions: ["kms:Encrypt", "kms:GenerateDataKey*"]}
"""


def test_access_conditions_load() -> None:
    config = load_config_text(DOCS)
    assert config.access_condition("office-hours") == AccessCondition(
        "office-hours", time_window=WEEKDAYS_9_TO_5_BERLIN
    )
    rule = config.access_condition("encrypt-only")
    facts = RequestFacts(now=at("2026-11-28T10:00:00"), action="kms:Decrypt")
    assert rule.check(facts) == "action kms:Decrypt is not one of kms:Encrypt, kms:GenerateDataKey*"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("{}", "spec"),
        ("{timeWindow: {timezone: Mars/Base, hours: ['09:00-17:00']}}", "spec.timeWindow.timezone"),
        ("{timeWindow: {hours: ['9-5']}}", "spec.timeWindow.hours[0]"),
        ("{timeWindow: {days: [Funday], hours: ['09:00-17:00']}}", "spec.timeWindow.days[0]"),
        ("{aws: {}}", "spec.aws"),
        ("{aws: {actions: [Encrypt]}}", "spec.aws.actions[0]"),
    ],
)
def test_bad_access_conditions(spec: str, field: str) -> None:
    text = f"apiVersion: latchkey/v1\nkind: AccessCondition\nmetadata: {{name: c}}\nspec: {spec}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml")
    assert "c.yaml:4:" in str(caught.value)
    assert f" {field}: " in str(caught.value)


PROVIDERS = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {name: s}
spec: {host: kms.us-east-1.amazonaws.com, port: 443, tls: true,
       authentication: {method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: prod}
spec: {type: aws-sts-federation, roleArn: "arn:aws:iam::000000000000:role/p", audience: sts}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {name: audit-readonly}
spec: {type: aws-sts-federation, roleArn: "arn:aws:iam::000000000000:role/a", audience: sts}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: c}
spec: {identities: [{sourceCidr: 127.0.0.0/8}]}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: p}
spec: {clients: [c], server: s, credentialProviders: [prod, audit-readonly]}
"""


@pytest.mark.parametrize(
    ("access_key_id", "chosen"),
    [(None, "prod"), ("AKIAPLACEHOLDER", "prod"), ("AUDIT-READONLY", "audit-readonly"),
     ("prod", "prod")],
)  # fmt: skip
def test_several_credential_providers_are_selected_by_access_key_id(
    access_key_id: str | None, chosen: str
) -> None:
    (policy,) = load_config_text(PROVIDERS).access_policies
    assert policy.select_provider(access_key_id) == chosen


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{clients: [c], server: s}", "give credentialProvider or credentialProviders"),
        ("{clients: [c], server: s, credentialProvider: prod, credentialProviders: [prod]}",
         "give credentialProvider or credentialProviders"),
        ("{clients: [c], server: s, credentialProviders: [prod, nope]}",
         "spec.credentialProviders[1]: no CredentialProvider named 'nope'"),
    ],
)  # fmt: skip
def test_bad_provider_lists(spec: str, message: str) -> None:
    text = PROVIDERS.rsplit("spec:", 1)[0] + f"spec: {spec}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    assert message in str(caught.value)
