"""GenerateMac and VerifyMac with HMAC keys (RFC 2104)."""

from __future__ import annotations

from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.jsonproto import encode_blob
from latchkey.cloud.kms import specs
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.cryptoparams import (
    MAX_MESSAGE,
    blob_param,
    check_dry_run,
    current_material,
    enum_param,
)
from latchkey.cloud.kms.keys import check_usable
from latchkey.crypto import keyspecs
from latchkey.store.base import KmsKeyRecord

MAC_ALGORITHMS = ("HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512")


def _mac_request(call: Call, action: str) -> tuple[KmsKeyRecord, bytes, str]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"))
    message = blob_param(p, "Message", MAX_MESSAGE)
    algorithm = enum_param(p, "MacAlgorithm", MAC_ALGORITHMS)
    authorize_key(call, action, record, **{"kms:MacAlgorithm": algorithm})
    check_usable(record)
    specs.check_usage(record, action, "GENERATE_VERIFY_MAC")
    specs.check_mac_algorithm(record, algorithm)
    return record, message, algorithm


async def generate_mac(call: Call) -> dict[str, Any]:
    record, message, algorithm = _mac_request(call, "GenerateMac")
    check_dry_run(call.params)
    tag = keyspecs.mac(current_material(call, record), algorithm, message)
    return {"Mac": encode_blob(tag), "MacAlgorithm": algorithm, "KeyId": record.arn}


async def verify_mac(call: Call) -> dict[str, Any]:
    record, message, algorithm = _mac_request(call, "VerifyMac")
    tag = blob_param(call.params, "Mac")
    check_dry_run(call.params)
    if not keyspecs.verify_mac(current_material(call, record), algorithm, message, tag):
        raise AwsError("KMSInvalidMacException", "")
    return {"KeyId": record.arn, "MacValid": True, "MacAlgorithm": algorithm}


OPERATIONS: dict[str, Handler] = {"GenerateMac": generate_mac, "VerifyMac": verify_mac}
READ_ONLY = frozenset(OPERATIONS)
# Never Message; the Mac is kept out too.
AUDITABLE_PARAMS = frozenset({"KeyId", "MacAlgorithm", "DryRun"})
