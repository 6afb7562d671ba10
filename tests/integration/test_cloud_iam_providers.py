"""IAM OpenID Connect providers as AWS clients see them (real boto3, real TLS)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from latchkey.store.base import OidcProviderRecord
from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    SUBJECT,
    THUMBPRINT,
    Cloud,
    FakeIssuer,
    node_ca,
    refused,
)

PRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"


def arn_of(key: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{key}"


def test_provider_lifecycle(iam: Any) -> None:
    created = iam.create_open_id_connect_provider(
        Url="https://Login.Example.COM/Tenant/AbC/",
        ClientIDList=["app-1", "app-2"],
        ThumbprintList=[PRINT],
        Tags=[{"Key": "team", "Value": "platform"}],
    )
    arn = created["OpenIDConnectProviderArn"]
    assert arn == arn_of("login.example.com/Tenant/AbC/")  # host lowercased, path exact
    assert created["Tags"] == [{"Key": "team", "Value": "platform"}]
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["Url"] == "login.example.com/Tenant/AbC/"
    assert got["ClientIDList"] == ["app-1", "app-2"]
    assert got["ThumbprintList"] == [PRINT]
    assert got["Tags"] == [{"Key": "team", "Value": "platform"}]
    assert got["CreateDate"].tzinfo is not None
    listed = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    assert arn in listed
    assert len(listed) == 2  # and the idp's, made at start-up
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    err = refused(iam.get_open_id_connect_provider, OpenIDConnectProviderArn=arn)
    assert err[:2] == ("NoSuchEntity", 404)
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)  # idempotent, as AWS


def test_provider_urls_compare_case_sensitively_in_the_path(iam: Any) -> None:
    first = iam.create_open_id_connect_provider(Url="https://example.com/Tenant")
    second = iam.create_open_id_connect_provider(Url="https://example.com/tenant")
    assert first["OpenIDConnectProviderArn"] != second["OpenIDConnectProviderArn"]
    err = refused(iam.create_open_id_connect_provider, Url="https://EXAMPLE.com/Tenant")
    assert err[:2] == ("EntityAlreadyExists", 409)
    assert "https://example.com/Tenant" in err.message


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://tenant.auth0.com/", "tenant.auth0.com/"),  # Auth0's issuers end with "/"
        ("https://tenant.auth0.com", "tenant.auth0.com"),
        ("https://a.example/c/", "a.example/c/"),
    ],
)
def test_a_trailing_slash_is_kept_as_aws_keeps_it(iam: Any, url: str, key: str) -> None:
    arn = iam.create_open_id_connect_provider(Url=url)["OpenIDConnectProviderArn"]
    assert arn == arn_of(key)
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["Url"] == key


def test_an_issuer_ending_in_a_slash_federates(cloud: Cloud, iam: Any) -> None:
    """Auth0-style: ``iss`` is ``https://host/``; the provider, its ARN and the trust policy's
    condition keys keep the ``/``."""
    issuer = FakeIssuer(node_ca(cloud.node))
    try:
        slash = issuer.url + "/"
        issuer.discovery["issuer"] = slash
        arn = iam.create_open_id_connect_provider(
            Url=slash, ClientIDList=[AUDIENCE], ThumbprintList=[THUMBPRINT]
        )["OpenIDConnectProviderArn"]
        key = slash.removeprefix("https://")
        assert arn == arn_of(key)
        claims = {f"{key}:aud": AUDIENCE, f"{key}:sub": SUBJECT}
        document = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Federated": arn},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": claims}}]})  # fmt: skip
        role = iam.create_role(RoleName="auth0", AssumeRolePolicyDocument=document)["Role"]["Arn"]
        got = cloud.client("sts").assume_role_with_web_identity(
            RoleArn=role, RoleSessionName="s1", WebIdentityToken=issuer.token(iss=slash)
        )
        assert (got["Provider"], got["Audience"]) == (arn, AUDIENCE)
        err = refused(cloud.client("sts").assume_role_with_web_identity, RoleArn=role,
                      RoleSessionName="s1", WebIdentityToken=issuer.token())  # fmt: skip
        assert err[:2] == ("InvalidIdentityToken", 400)  # "https://host" is another issuer
    finally:
        issuer.close()


def test_provider_without_client_ids_or_thumbprints(iam: Any) -> None:
    arn = iam.create_open_id_connect_provider(Url="https://bare.example")[
        "OpenIDConnectProviderArn"
    ]
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert (got["ClientIDList"], got["ThumbprintList"]) == ([], [])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Url": "http://example.com"}, "ValidationError"),
        ({"Url": "https://"}, "ValidationError"),
        ({"Url": "https://example.com/?q=1"}, "ValidationError"),
        ({"Url": "https://example.com", "ThumbprintList": ["0" * 39]}, "ValidationError"),
        ({"Url": "https://example.com", "ThumbprintList": ["g" * 40]}, "ValidationError"),
        (
            {"Url": "https://example.com", "ThumbprintList": [f"{i:040x}" for i in range(6)]},
            "LimitExceeded",
        ),
        (
            {"Url": "https://example.com", "ClientIDList": [f"c{i}" for i in range(101)]},
            "LimitExceeded",
        ),
        ({"Url": "https://example.com", "ClientIDList": ["x" * 256]}, "ValidationError"),
        (
            {
                "Url": "https://example.com",
                "Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
            },
            "InvalidInput",
        ),
    ],
)
def test_create_provider_validation(
    cloud: Cloud, iam: Any, params: dict[str, Any], code: str
) -> None:
    err = refused(cloud.unvalidated("iam").create_open_id_connect_provider, **params)
    assert err.code == code
    assert err.status == (409 if code == "LimitExceeded" else 400)
    assert (
        refused(
            iam.get_open_id_connect_provider, OpenIDConnectProviderArn=arn_of("example.com")
        ).code
        == "NoSuchEntity"
    )


def test_client_ids_add_and_remove(iam: Any) -> None:
    arn = iam.create_open_id_connect_provider(
        Url="https://ids.example", ClientIDList=[f"c{i}" for i in range(99)]
    )["OpenIDConnectProviderArn"]
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="new")
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="new")
    err = refused(
        iam.add_client_id_to_open_id_connect_provider,
        OpenIDConnectProviderArn=arn,
        ClientID="one-too-many",
    )
    assert err[:2] == ("LimitExceeded", 409)
    iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="c0")
    iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="c0")
    ids = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ClientIDList"]
    assert len(ids) == 99
    assert "new" in ids
    assert "c0" not in ids
    missing = arn_of("nobody.example")
    for call in (
        iam.add_client_id_to_open_id_connect_provider,
        iam.remove_client_id_from_open_id_connect_provider,
    ):
        assert refused(call, OpenIDConnectProviderArn=missing, ClientID="x")[:2] == (
            "NoSuchEntity",
            404,
        )


def test_update_thumbprints(cloud: Cloud, iam: Any) -> None:
    arn = iam.create_open_id_connect_provider(Url="https://tp.example", ThumbprintList=[PRINT])[
        "OpenIDConnectProviderArn"
    ]
    other = "a" * 40
    iam.update_open_id_connect_provider_thumbprint(
        OpenIDConnectProviderArn=arn, ThumbprintList=[other, PRINT]
    )
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["ThumbprintList"] == [other, PRINT]
    err = refused(
        cloud.unvalidated("iam").update_open_id_connect_provider_thumbprint,
        OpenIDConnectProviderArn=arn,
        ThumbprintList=["nothex"],
    )
    assert err[:2] == ("ValidationError", 400)
    err = refused(
        iam.update_open_id_connect_provider_thumbprint,
        OpenIDConnectProviderArn=arn_of("nobody.example"),
        ThumbprintList=[],
    )
    assert err[:2] == ("NoSuchEntity", 404)


def test_provider_tags(iam: Any) -> None:
    arn = iam.create_open_id_connect_provider(Url="https://tags.example")[
        "OpenIDConnectProviderArn"
    ]
    iam.tag_open_id_connect_provider(
        OpenIDConnectProviderArn=arn, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}]
    )
    iam.tag_open_id_connect_provider(
        OpenIDConnectProviderArn=arn, Tags=[{"Key": "a", "Value": "changed"}]
    )
    tags = iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)
    assert tags["Tags"] == [{"Key": "a", "Value": "changed"}, {"Key": "b", "Value": "2"}]
    assert tags["IsTruncated"] is False
    page = iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn, MaxItems=1)
    assert (page["Tags"], page["IsTruncated"]) == ([{"Key": "a", "Value": "changed"}], True)
    rest = iam.list_open_id_connect_provider_tags(
        OpenIDConnectProviderArn=arn, Marker=page["Marker"]
    )
    assert rest["Tags"] == [{"Key": "b", "Value": "2"}]
    iam.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=["a", "zzz"])
    tags = iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)["Tags"]
    assert tags == [{"Key": "b", "Value": "2"}]
    many = [{"Key": f"k{i}", "Value": ""} for i in range(50)]
    err = refused(iam.tag_open_id_connect_provider, OpenIDConnectProviderArn=arn, Tags=many)
    assert err[:2] == ("LimitExceeded", 409)
    assert len(iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)["Tags"]) == 1


def test_federation_still_finds_the_startup_provider(cloud: Cloud, iam: Any) -> None:
    idp = cloud.node.info.idp
    host_port = idp.split("://", 1)[1].rstrip("/")
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn_of(host_port))
    assert got["Url"] == host_port


def test_a_provider_stored_without_its_slash_still_federates(cloud: Cloud, iam: Any) -> None:
    """Before IAM kept the ``/``, ``https://host/`` was stored as ``host``: such a provider
    still accepts its issuer's tokens."""
    issuer = FakeIssuer(node_ca(cloud.node))
    try:
        slash = issuer.url + "/"
        issuer.discovery["issuer"] = slash
        key = issuer.url.removeprefix("https://")
        store = cloud.node.node.store
        assert store is not None
        store.save_oidc_provider(OidcProviderRecord(arn_of(key), key, (AUDIENCE,), (), 0.0))
        document = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Federated": arn_of(key)},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": {f"{key}:aud": AUDIENCE}}}]})  # fmt: skip
        role = iam.create_role(RoleName="old", AssumeRolePolicyDocument=document)["Role"]["Arn"]
        sts = cloud.client("sts")
        got = sts.assume_role_with_web_identity(
            RoleArn=role, RoleSessionName="s1", WebIdentityToken=issuer.token(iss=slash)
        )
        assert got["Provider"] == arn_of(key)
    finally:
        issuer.close()
