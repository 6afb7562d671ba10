"""The credential scope of an unsigned request, from the AWS endpoint name it is sent to."""

from __future__ import annotations

import gzip
import json
import pathlib

import botocore
import pytest

from latchkey.aws.endpoints import host_scope
from latchkey.control.model import normalize_host
from latchkey.edge.sign import Refusal, refusal_response, scope_of, signing_scope
from latchkey.http.h1 import Request

BARE = Request("GET", "/", [])


@pytest.mark.parametrize(
    ("host", "scope"),
    [
        ("kms.us-east-1.amazonaws.com", ("us-east-1", "kms")),
        ("KMS.EU-WEST-3.AMAZONAWS.COM.", ("eu-west-3", "kms")),
        ("kms-fips.us-east-1.amazonaws.com", ("us-east-1", "kms")),
        ("kms.us-east-1.api.aws", ("us-east-1", "kms")),
        ("kms-fips.us-gov-west-1.api.aws", ("us-gov-west-1", "kms")),
        ("kms.cn-north-1.amazonaws.com.cn", ("cn-north-1", "kms")),
        ("kms.us-isob-east-1.amazonaws.com", ("us-isob-east-1", "kms")),
        ("vpce-0a1b-c2d3.kms.eu-central-1.vpce.amazonaws.com", ("eu-central-1", "kms")),
        ("runtime.sagemaker.eu-west-1.amazonaws.com", ("eu-west-1", "sagemaker")),
        ("bedrock-runtime.us-west-2.amazonaws.com", ("us-west-2", "bedrock")),
        ("email.eu-west-1.amazonaws.com", ("eu-west-1", "ses")),
        ("data-ats.iot.us-east-1.amazonaws.com", ("us-east-1", "iotdata")),
        # S3: path style, virtual hosts, dual-stack, FIPS, the legacy dash form
        ("s3.us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("mybucket.s3.us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("my.dotted.bucket.s3.us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("us-east-1.s3.eu-west-1.amazonaws.com", ("eu-west-1", "s3")),  # a bucket named so
        ("s3.dualstack.eu-west-1.amazonaws.com", ("eu-west-1", "s3")),
        ("mybucket.s3.dualstack.eu-west-1.amazonaws.com", ("eu-west-1", "s3")),
        ("mybucket.s3-fips.dualstack.us-east-1.amazonaws.com", ("us-east-1", "s3")),
        ("s3-fips.us-gov-west-1.amazonaws.com", ("us-gov-west-1", "s3")),
        ("mybucket.s3-us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("s3-external-1.amazonaws.com", ("us-east-1", "s3")),
        ("bucket.vpce-0a1b-c2d3.s3.us-east-1.vpce.amazonaws.com", ("us-east-1", "s3")),
        ("mybucket.s3.amazonaws.com", ("us-east-1", "s3")),
        ("s3.amazonaws.com", ("us-east-1", "s3")),
        # S3's other endpoints
        ("ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("ap-123456789012.s3-accesspoint.dualstack.us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("ap-123456789012.s3-accesspoint-fips.us-east-1.amazonaws.com", ("us-east-1", "s3")),
        ("123456789012.s3-control.us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("s3-control-fips.dualstack.us-east-1.amazonaws.com", ("us-east-1", "s3")),
        (
            "ap-123456789012.s3-object-lambda.us-east-1.amazonaws.com",
            ("us-east-1", "s3-object-lambda"),
        ),
        (
            "ap-123456789012.s3-object-lambda-fips.us-east-1.amazonaws.com",
            ("us-east-1", "s3-object-lambda"),
        ),
        (
            "ap-123456789012.op-01234567890123456.s3-outposts.us-west-2.amazonaws.com",
            ("us-west-2", "s3-outposts"),
        ),
        (
            "bucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com",
            ("us-west-2", "s3express"),
        ),
        ("s3express-control.us-west-2.amazonaws.com", ("us-west-2", "s3express")),
        # global endpoints
        ("iam.amazonaws.com", ("us-east-1", "iam")),
        ("iam-fips.amazonaws.com", ("us-east-1", "iam")),
        ("sts.amazonaws.com", ("us-east-1", "sts")),
        ("route53.amazonaws.com", ("us-east-1", "route53")),
        ("global.health.amazonaws.com", ("us-east-1", "health")),
        ("iam.us-gov.amazonaws.com", ("us-gov-west-1", "iam")),
        ("route53.amazonaws.com.cn", ("cn-northwest-1", "route53")),
        # not said for sure: refused rather than guessed
        ("localhost", None),
        ("minio.internal", None),
        ("127.0.0.1", None),
        ("mybucket.s3-accelerate.amazonaws.com", None),  # the bucket's region, unknown
        ("mybucket.s3-accelerate.dualstack.amazonaws.com", None),
        ("mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com", None),  # SigV4a
        ("newservice.amazonaws.com", None),  # no region, and no global endpoint we know
        ("kms.us-east-1.example.amazonaws.com", None),
        ("us-east-1.amazonaws.com", None),
        ("dualstack.us-east-1.amazonaws.com", None),
        ("vpce.amazonaws.com", None),
        ("us-gov.amazonaws.com", None),
        ("iam.api.aws", None),
        ("kms.us-east-1.amazonaws.com.evil.example", None),
    ],
)
def test_host_scope(host: str, scope: tuple[str, str] | None) -> None:
    assert host_scope(normalize_host(host)) == scope  # (as the edge calls it)


def _botocore_signing_names() -> dict[str, str]:
    """endpointPrefix -> signingName of every service model botocore ships."""
    names = {}
    decoder = json.JSONDecoder()
    for path in (pathlib.Path(botocore.__file__).parent / "data").glob("*/*/service-2.json*"):
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()
        # the metadata object alone: parsing whole models would take seconds
        metadata, _ = decoder.raw_decode(text, text.index("{", text.index('"metadata"')))
        names[metadata["endpointPrefix"]] = metadata.get("signingName", metadata["endpointPrefix"])
    return names


def test_every_botocore_endpoint_prefix_gives_its_signing_name() -> None:
    names = _botocore_signing_names()
    assert len(names) > 300
    wrong = {
        prefix: (host_scope(f"{prefix}.eu-west-1.amazonaws.com"), name)
        for prefix, name in names.items()
        if host_scope(f"{prefix}.eu-west-1.amazonaws.com") != ("eu-west-1", name)
    }
    assert wrong == {}


def test_the_placeholder_scope_wins_over_the_host() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=AKID/20240501/eu-west-1/s3/aws4_request, Signature=0"
    request = Request("GET", "/", [("Authorization", auth)])
    assert signing_scope(request, "mybucket.s3-accelerate.amazonaws.com") == ("eu-west-1", "s3")
    assert signing_scope(request, "minio.internal") == ("eu-west-1", "s3")


def test_an_unsigned_request_to_an_unknown_host_is_refused_with_the_workaround() -> None:
    with pytest.raises(Refusal) as err:
        signing_scope(BARE, "minio.internal")
    assert "placeholder keys" in err.value.message
    assert "minio.internal" in err.value.message
    response = refusal_response(err.value, BARE, "minio.internal")
    assert response.status == 400
    assert b"placeholder keys" in response.body


def test_scope_of_still_guesses_for_error_shapes_and_actions() -> None:
    assert scope_of(BARE, "mybucket.s3.us-west-2.amazonaws.com") == ("us-west-2", "s3")
    assert scope_of(BARE, "minio.internal") == ("us-east-1", "minio")
