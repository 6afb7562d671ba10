"""Condition keys that cost a lookup are computed only when a condition asks for them."""

from __future__ import annotations

from latchkey.aws.policy import Decision, RequestContext, evaluate, parse_policy

ALLOW_ALL = parse_policy(
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
    '"Action":"kms:*","Resource":"*"}]}',
    require_principal=True,
)
TAGGED_ONLY = parse_policy(
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*",'
    '"Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"blue"}}}]}',
    require_principal=True,
)


def test_lazy_keys_are_not_computed_when_no_condition_asks() -> None:
    calls: list[int] = []

    def lookup() -> dict[str, str]:
        calls.append(1)
        return {"aws:ResourceTag/team": "blue"}

    ctx = RequestContext("kms:Encrypt", "arn:k", lazy=lookup)
    assert evaluate(ALLOW_ALL, ctx) is Decision.ALLOW
    assert calls == []


def test_lazy_keys_are_computed_once_when_a_condition_asks() -> None:
    calls: list[int] = []

    def lookup() -> dict[str, str]:
        calls.append(1)
        return {"aws:ResourceTag/team": "blue"}

    ctx = RequestContext("kms:Encrypt", "arn:k", keys={"kms:KeySpec": "X"}, lazy=lookup)
    assert evaluate(TAGGED_ONLY, ctx) is Decision.ALLOW
    assert evaluate(TAGGED_ONLY, ctx) is Decision.ALLOW
    assert ctx.values("aws:resourcetag/TEAM") == ("blue",)
    assert calls == [1]
    red = RequestContext("kms:Encrypt", "arn:k", lazy=lambda: {"aws:ResourceTag/team": "red"})
    assert evaluate(TAGGED_ONLY, red) is Decision.IMPLICIT_DENY


def test_given_keys_win_over_lazy_ones() -> None:
    ctx = RequestContext(
        "kms:Encrypt", "arn:k", keys={"aws:ResourceTag/team": "blue"},
        lazy=lambda: {"aws:ResourceTag/team": "red", "kms:Other": "x"},
    )  # fmt: skip
    assert ctx.values("kms:Other") == ("x",)
    assert ctx.values("aws:ResourceTag/team") == ("blue",)
