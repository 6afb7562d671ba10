"""Tags of KMS keys as AWS KMS answers them (real boto3, real node): TagResource,
UntagResource, ListResourceTags, CreateKey's Tags, the limits and the reserved prefix, and
tags as condition keys (``aws:ResourceTag``, ``aws:RequestTag``, ``aws:TagKeys``)."""

from __future__ import annotations

from typing import Any

import pytest

from latchkey_testing import Cloud, allow, policy, refused


def tag(key: str, value: str = "v") -> dict[str, str]:
    return {"TagKey": key, "TagValue": value}


def new_key(kms: Any, **extra: Any) -> tuple[str, str]:
    meta = kms.create_key(**extra)["KeyMetadata"]
    return str(meta["KeyId"]), str(meta["Arn"])


def user_kms(cloud: Cloud, name: str, inline: str) -> Any:
    iam = cloud.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=inline)
    return cloud.as_key("kms", iam.create_access_key(UserName=name)["AccessKey"])


def test_tag_untag_and_list(kms: Any) -> None:
    key_id, arn = new_key(kms)
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []
    kms.tag_resource(KeyId=key_id, Tags=[tag("b", "2"), tag("a", "1"), tag("Empty", "")])
    kms.tag_resource(KeyId=arn, Tags=[tag("b", "two"), tag("c", "3")])  # replace b, add c
    listed = kms.list_resource_tags(KeyId=key_id)
    assert listed["Tags"] == [tag("Empty", ""), tag("a", "1"), tag("b", "two"), tag("c", "3")]
    assert listed["Truncated"] is False
    kms.untag_resource(KeyId=key_id, TagKeys=["a", "not-there", "B"])  # case-sensitive keys
    assert [t["TagKey"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]] == [
        "Empty",
        "b",
        "c",
    ]


def test_create_key_with_tags(kms: Any) -> None:
    key_id, _ = new_key(kms, Tags=[tag("team", "payments"), tag("env", "dev")])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [
        tag("env", "dev"),
        tag("team", "payments"),
    ]


def test_list_resource_tags_pages(kms: Any) -> None:
    key_id, _ = new_key(kms, Tags=[tag(f"k{n}") for n in range(5)])
    first = kms.list_resource_tags(KeyId=key_id, Limit=3)
    assert first["Truncated"] is True
    rest = kms.list_resource_tags(KeyId=key_id, Limit=3, Marker=first["NextMarker"])
    assert rest["Truncated"] is False
    assert [t["TagKey"] for t in first["Tags"] + rest["Tags"]] == [f"k{n}" for n in range(5)]


@pytest.mark.parametrize("key", ["aws:owner", "AWS:owner", "Aws:x"])
def test_aws_prefix_is_reserved(kms: Any, key: str) -> None:
    reserved = ("TagException", 400, "Tags beginning with aws: are reserved")
    key_id, _ = new_key(kms)
    assert refused(kms.tag_resource, KeyId=key_id, Tags=[tag(key)]) == reserved
    assert refused(kms.create_key, Tags=[tag(key)]) == reserved
    assert refused(kms.untag_resource, KeyId=key_id, TagKeys=[key]) == reserved
    assert len(kms.list_keys()["Keys"]) == 1  # no key was made for the refused CreateKey


def test_tag_limits(cloud: Cloud, kms: Any) -> None:
    key_id, _ = new_key(kms, Tags=[tag(f"k{n}") for n in range(49)])
    too_many = refused(kms.create_key, Tags=[tag(f"k{n}") for n in range(51)])
    assert too_many == ("TagException", 400, "Too many tags")
    dupes = refused(kms.tag_resource, KeyId=key_id, Tags=[tag("x", "1"), tag("x", "2")])
    assert dupes == ("TagException", 400, "Duplicate tag keys")
    kms.tag_resource(KeyId=key_id, Tags=[tag("k50")])  # the 50th
    kms.tag_resource(KeyId=key_id, Tags=[tag("k0", "new")])  # replacing is not adding
    err = refused(kms.tag_resource, KeyId=key_id, Tags=[tag("k51")])
    assert err[:2] == ("LimitExceededException", 400)
    assert len(kms.list_resource_tags(KeyId=key_id)["Tags"]) == 50


def test_tag_lengths(cloud: Cloud) -> None:
    kms = cloud.unvalidated("kms")
    key_id, _ = new_key(kms)
    long_key = "k" * 129
    err = refused(kms.tag_resource, KeyId=key_id, Tags=[tag("ok"), tag(long_key)])
    assert err[:2] == ("ValidationException", 400)
    assert "'tags.2.member.tagKey'" in err.message
    assert "Member must have length less than or equal to 128" in err.message
    err = refused(kms.tag_resource, KeyId=key_id, Tags=[tag("ok", "v" * 257)])
    assert err[:2] == ("ValidationException", 400)
    assert "less than or equal to 256" in err.message
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []


def test_no_tagging_while_pending_deletion(kms: Any) -> None:
    key_id, arn = new_key(kms, Tags=[tag("a")])
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    pending = ("KMSInvalidStateException", 400, f"{arn} is pending deletion.")
    assert refused(kms.tag_resource, KeyId=key_id, Tags=[tag("b")]) == pending
    assert refused(kms.untag_resource, KeyId=key_id, TagKeys=["a"]) == pending
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [tag("a")]


def test_tagging_needs_its_permission(cloud: Cloud, kms: Any) -> None:
    key_id, _ = new_key(kms)
    lister = user_kms(cloud, "lister", policy(allow(["kms:ListResourceTags", "kms:CreateKey"])))
    assert lister.list_resource_tags(KeyId=key_id)["Tags"] == []
    assert refused(lister.tag_resource, KeyId=key_id, Tags=[tag("a")]).code == (
        "AccessDeniedException"
    )
    assert refused(lister.untag_resource, KeyId=key_id, TagKeys=["a"]).code == (
        "AccessDeniedException"
    )
    # CreateKey with Tags needs kms:TagResource as well.
    err = refused(lister.create_key, Tags=[tag("a")])
    assert err.code == "AccessDeniedException"
    assert "kms:TagResource" in err.message
    assert len(kms.list_keys()["Keys"]) == 1


def test_resource_tag_condition(cloud: Cloud, kms: Any) -> None:
    condition = {"StringEquals": {"aws:ResourceTag/team": "payments"}}
    user = user_kms(cloud, "payments", policy(allow("kms:Encrypt", Condition=condition)))
    theirs, _ = new_key(kms, Tags=[tag("team", "payments")])
    other, _ = new_key(kms, Tags=[tag("team", "search")])
    user.encrypt(KeyId=theirs, Plaintext=b"x")
    assert refused(user.encrypt, KeyId=other, Plaintext=b"x").code == "AccessDeniedException"


def test_request_tag_conditions(cloud: Cloud, kms: Any) -> None:
    only_env = {"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}
    user = user_kms(cloud, "tagger", policy(allow("kms:TagResource", Condition=only_env)))
    key_id, _ = new_key(kms)
    user.tag_resource(KeyId=key_id, Tags=[tag("env", "dev")])
    assert refused(user.tag_resource, KeyId=key_id, Tags=[tag("owner")]).code == (
        "AccessDeniedException"
    )
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [tag("env", "dev")]
