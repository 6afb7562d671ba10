"""The local cloud's HTTP app: one listener, routed by ``X-Amz-Target`` / ``Action``.

A request with ``X-Amz-Target``, or with an AWS JSON content type (``application/x-amz-json-1.0``
or ``-1.1``) and none, is a JSON 1.1 (KMS) call, answered in JSON even when the target is
missing; anything else (form-encoded bodies, query strings) is a query (IAM, STS) call.

Each call: authenticate (SigV4) -> dispatch to the service's handler -> audit -> answer.
The audit event is written before the answer; if it cannot be, the call fails. Once the trail
refuses events (after a failed or overdue write), every call fails at once, before its handler
runs: nothing changes unrecorded. A call whose handler had already committed a change when its
own event failed (in flight at the first failure, or abandoned at its deadline) leaves that
change standing: the log then holds its event, at ERROR (docs/cloud.md, the known limit).

Store failures: a write lock held elsewhere (``StoreBusy``) answers a retryable 500 (the SDKs
retry a 500 with backoff; nothing changed); a commit that failed with an I/O error
(``WriteUnconfirmed``) answers, and records, that the outcome is unknown.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from latchkey.aws import jsonproto, queryproto, sigv4
from latchkey.aws.errors import AwsError
from latchkey.clock import Clock
from latchkey.cloud.audit import UNAVAILABLE, AuditError, AuditEvent, AuditLog
from latchkey.cloud.iam import ops as iam_ops
from latchkey.cloud.identity import (
    JSON_AUTH_ERRORS,
    QUERY_AUTH_ERRORS,
    Authenticator,
    Caller,
)
from latchkey.cloud.kms import ops as kms_ops
from latchkey.cloud.kms import validation as kms_validation
from latchkey.cloud.kms.usage import TrackedKeyRing, describe_call
from latchkey.cloud.sts import ops as sts_ops
from latchkey.cloud.trailevents import (
    AUDIT_VALUE_CHARS,
    camel,
    redacted,
    role_resources,
    safe_params,
    sts_elements,
    sts_parameters,
    user_identity,
    web_identity_user,
)
from latchkey.crypto import randombytes
from latchkey.crypto.rootkey import RootKey
from latchkey.http.h1 import Request, Response
from latchkey.http.server import Peer
from latchkey.issuerkeys import JwksFetcher
from latchkey.store.base import Store, StoreBusy, StoreError, WriteUnconfirmed

log = logging.getLogger("latchkey.cloud")

BUSY = "The store is busy; retry the request."
UNCONFIRMED = "The store could not confirm the write; its outcome is unknown."
INTERNAL = "An internal error occurred."
# KMS's words for a call over its request quota (ThrottlingException), and STS/IAM's (Throttling)
THROTTLED_KMS = (
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
)
THROTTLED_QUERY = "Rate exceeded"

KMS_SKEW = dt.timedelta(minutes=5)
STS_SKEW = dt.timedelta(minutes=15)
DEFAULT_REGION = "us-east-1"
MAX_INFLIGHT = 1024  # cloud calls in progress at once, by default


@dataclass(frozen=True, slots=True)
class CloudSettings:
    account: str = "000000000000"
    default_region: str = DEFAULT_REGION
    max_inflight: int = MAX_INFLIGHT  # calls in progress at once; beyond, throttled at once


def _scope(request: Request) -> tuple[str | None, str | None]:
    """(service, region) from the credential scope, when the request carries one."""
    auth = request.header("Authorization") or ""
    marker = "Credential="
    if marker in auth:
        cred = auth.split(marker, 1)[1].split(",", 1)[0].strip()
        parts = cred.split("/")
        if len(parts) == 5:
            return parts[3], parts[2]
    return None, None


class CloudApp:
    def __init__(
        self,
        *,
        store: Store,
        root_key: RootKey,
        clock: Clock,
        audit: AuditLog,
        jwks: JwksFetcher,
        settings: CloudSettings | None = None,
    ) -> None:
        self.store = store
        self.root_key = root_key
        self.clock = clock
        self.audit = audit
        self.jwks = jwks
        self.settings = settings or CloudSettings()
        self.auth = Authenticator(store, root_key, clock)
        self._time = (-1, "")  # (second, eventTime text)
        self._inflight = 0  # calls in progress

    async def __call__(self, request: Request, peer: Peer) -> Response:
        if request.method == "GET" and request.path in ("/healthz", "/ping"):
            return Response(200, [("Content-Type", "text/plain")], b"ok\n")
        request_id = randombytes.uuid4()
        json_call = request.header("X-Amz-Target") is not None or jsonproto.is_aws_json(
            request.header("Content-Type")
        )
        if self._inflight >= self.settings.max_inflight:
            return self._shed(json_call, request, request_id)
        self._inflight += 1
        try:
            if json_call:
                return await self._json_call(request, peer, request_id)
            return await self._query_call(request, peer, request_id)
        finally:
            self._inflight -= 1

    def _shed(self, json_call: bool, request: Request, request_id: str) -> Response:
        """Overload: more calls in progress than ``max_inflight`` (their audit events queue
        behind one writer). This one is answered at once, before authentication, with the
        throttling error SDKs back off from and retry (``ThrottlingException``; ``Throttling``
        for STS/IAM); nothing ran, so there is nothing to audit."""
        if json_call:
            err = AwsError("ThrottlingException", THROTTLED_KMS, 400)
            status, headers, body = jsonproto.encode_error(err)
        else:
            iam = _scope(request)[0] == "iam"
            namespace = iam_ops.NAMESPACE if iam else sts_ops.NAMESPACE
            err = AwsError("Throttling", THROTTLED_QUERY, 400)
            status, headers, body = queryproto.encode_error(err, namespace, request_id)
        headers.append(("x-amzn-RequestId", request_id))
        return Response(status, headers, body)

    # -- shared ---------------------------------------------------------------------------

    def _sigv4_request(self, request: Request) -> sigv4.HttpRequest:
        return sigv4.HttpRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=tuple(request.headers),
            body=request.body,
        )

    def _event(
        self,
        request: Request,
        peer: Peer,
        request_id: str,
        source: str,
        name: str,
        region: str,
        caller: Caller | None,
    ) -> AuditEvent:
        identity: dict[str, Any] = {}
        if caller is not None:
            # The same for every call with these credentials: made once per store generation.
            # Shared between events, so never changed in place (an event may replace it).
            identity = self.store.cached(
                "audit-identity", caller.access_key_id, lambda: user_identity(caller)
            )
        return AuditEvent(
            event_source=source,
            event_name=name,
            region=region,
            source_ip=peer.host,
            user_agent=(request.header("User-Agent") or "")[:256],
            request_id=request_id,
            event_time=self._event_time(),
            user_identity=identity,
            recipient_account=caller.account if caller is not None else self.settings.account,
        )

    def _event_time(self) -> str:
        """The current time as CloudTrail writes it, formatted once per second."""
        now = self.clock.now()
        second = int(now.timestamp())
        if second != self._time[0]:
            self._time = (second, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return self._time[1]

    async def _record(self, event: AuditEvent) -> None:
        if event.request_parameters is not None:
            event.request_parameters = redacted(event.request_parameters)
        if event.response_elements is not None:
            event.response_elements = redacted(event.response_elements)
        await self.audit.record(event)  # durable, or AuditError (fail closed)
        if log.isEnabledFor(logging.DEBUG):  # one line per call: the audit trail is the record
            log.debug(
                "%s %s %s %s",
                event.event_source.split(".")[0],
                event.event_name,
                event.user_identity.get("arn", "-"),
                event.error_code or "OK",
            )

    def _unrecorded(self, event: AuditEvent | None, done: bool, exc: AuditError) -> None:
        """The audit trail failed on this call's event after its handler ran: a call that
        changes state has changed it (committed to the store), and the trail holds no event
        for it, or one that says it failed (abandoned at its deadline), or the success (only
        the file failed, or the commit outlived the hard cap). The event goes to the log too
        (events hold no secrets), so the change is on record somewhere. Every later call fails
        before its handler runs (the ``refusing`` check), so only calls in flight can."""
        if event is None or not done or event.read_only:
            return
        log.error(
            "audit: %s %s (request %s) was carried out, but the audit trail failed (%s): the "
            "trail may lack its event or say the call failed; the event: %s",
            event.event_source.split(".")[0], event.event_name, event.request_id, exc,
            json.dumps(event.to_json(), sort_keys=True, default=str),
        )  # fmt: skip

    @staticmethod
    def _store_failure(exc: StoreError, service: str, operation: str) -> str:
        """The message a call that met a store failure answers (and its event records); the
        failure itself goes to the log, as it is."""
        if isinstance(exc, StoreBusy):
            log.warning("%s %s: %s", service, operation, exc)
            return BUSY
        log.error("%s %s: %s", service, operation, exc)  # e.g. "the store refuses writes ..."
        return UNCONFIRMED if isinstance(exc, WriteUnconfirmed) else INTERNAL

    # -- JSON 1.1 (KMS) -------------------------------------------------------------------

    async def _json_call(self, request: Request, peer: Peer, request_id: str) -> Response:
        if self.audit.refusing is not None:  # fail before anything runs: nothing unrecorded
            failure = AwsError("KMSInternalException", UNAVAILABLE, 500)
            status, headers, body = jsonproto.encode_error(failure)
            headers.append(("x-amzn-RequestId", request_id))
            return Response(status, headers, body)
        _service, scope_region = _scope(request)
        region = scope_region or self.settings.default_region
        operation = "Unknown"
        event: AuditEvent | None = None
        keys: TrackedKeyRing | None = None
        done = False  # the handler ran to its end
        try:
            # Protocol and operation first, as AWS's front end does; then who is calling.
            jsonproto.check_content_type(request.header("Content-Type"))
            prefix, operation = jsonproto.parse_target(request.header("X-Amz-Target"))
            handler = kms_ops.OPERATIONS.get(operation) if prefix == "TrentService" else None
            if handler is None:
                raise AwsError("UnknownOperationException", "")
            caller = self.auth.authenticate(
                self._sigv4_request(request),
                errors=JSON_AUTH_ERRORS,
                max_skew=KMS_SKEW,
                service="kms",
                source_ip=peer.host or None,
                secure_transport=peer.secure,
            )
            event = self._event(
                request, peer, request_id, "kms.amazonaws.com", operation, region, caller
            )
            params = jsonproto.decode_body(request.body)
            event.read_only = operation in kms_ops.READ_ONLY
            kms_validation.validate(operation, params)  # the model's types and constraints
            recorded = safe_params(params, kms_ops.AUDITABLE_PARAMS)
            event.request_parameters = kms_validation.trail_parameters(operation, recorded) or None
            keys = TrackedKeyRing(
                self.store, self.root_key, caller.account, region, clock=self.clock,
                trail=self.audit.store,
            )  # fmt: skip
            result = await handler(kms_ops.Call(caller, keys, params))
            done = True
            describe_call(event, keys, operation, result)
            await self._record(event)
            body = jsonproto.encode_body(result)
            headers = [("Content-Type", jsonproto.CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
            return Response(200, headers, body)
        except AwsError as err:
            if event is not None and keys is not None:
                describe_call(event, keys, operation, None)
            return await self._json_error(err, request, peer, request_id, event, operation, region)
        except AuditError as exc:
            log.error("audit write failed; refusing the call")
            self._unrecorded(event, done, exc)
            return await self._json_error(
                AwsError("KMSInternalException", UNAVAILABLE, 500),
                request, peer, request_id, None, operation, region, audit=False,
            )  # fmt: skip
        except StoreError as exc:
            message = self._store_failure(exc, "kms", operation)
            if event is not None and keys is not None:
                describe_call(event, keys, operation, None)
            return await self._json_error(
                AwsError("KMSInternalException", message, 500),
                request, peer, request_id, event, operation, region,
            )  # fmt: skip
        except Exception:
            log.exception("unhandled error in KMS %s", operation)
            return await self._json_error(
                AwsError("KMSInternalException", INTERNAL, 500),
                request, peer, request_id, event, operation, region,
            )  # fmt: skip

    async def _json_error(
        self,
        err: AwsError,
        request: Request,
        peer: Peer,
        request_id: str,
        event: AuditEvent | None,
        operation: str,
        region: str,
        *,
        audit: bool = True,
    ) -> Response:
        if audit:
            if event is None:
                event = self._event(
                    request, peer, request_id, "kms.amazonaws.com", operation, region, None
                )
            event.error_code = err.code
            event.error_message = err.message
            try:
                await self._record(event)
            except AuditError:
                err = AwsError("KMSInternalException", UNAVAILABLE, 500)
        status, headers, body = jsonproto.encode_error(err)
        headers.append(("x-amzn-RequestId", request_id))
        return Response(status, headers, body)

    # -- query (IAM, STS) -----------------------------------------------------------------

    async def _query_call(self, request: Request, peer: Peer, request_id: str) -> Response:
        scope_service, scope_region = _scope(request)
        region = scope_region or self.settings.default_region
        namespace = sts_ops.NAMESPACE
        action = "Unknown"
        event: AuditEvent | None = None
        service = "sts"
        done = False  # the handler ran to its end
        try:
            params = queryproto.decode_form(request.body, request.query)
            action = params.get("Action", "")
            service = scope_service or ("iam" if action in iam_ops.OPERATIONS else "sts")
            if service == "iam":
                namespace = iam_ops.NAMESPACE
            if self.audit.refusing is not None:  # fail before anything runs: nothing unrecorded
                failure = AwsError("ServiceFailure", UNAVAILABLE, 500, sender=False)
                status, headers, body = queryproto.encode_error(failure, namespace, request_id)
                headers.append(("x-amzn-RequestId", request_id))
                return Response(status, headers, body)
            caller: Caller | None = None
            if not (service == "sts" and action in sts_ops.UNSIGNED):
                caller = self.auth.authenticate(
                    self._sigv4_request(request),
                    errors=QUERY_AUTH_ERRORS,
                    max_skew=STS_SKEW,
                    service=service,
                    source_ip=peer.host or None,
                    secure_transport=peer.secure,
                )
            source = f"{service}.amazonaws.com"
            event = self._event(request, peer, request_id, source, action, region, caller)
            if service == "iam":
                result = await self._iam(action, caller, params, event)
            elif service == "sts":
                result = await self._sts(action, caller, params, event, peer, region)
            else:
                raise AwsError("InvalidAction", f"Could not find operation {action}")
            done = True
            await self._record(event)
            body = queryproto.encode_result(action, namespace, result, request_id)
            return Response(200, [("Content-Type", queryproto.CONTENT_TYPE),
                                  ("x-amzn-RequestId", request_id)], body)  # fmt: skip
        except AwsError as err:
            return await self._query_error(err, request, peer, request_id, event, action, namespace)
        except AuditError as exc:
            log.error("audit write failed; refusing the call")
            self._unrecorded(event, done, exc)
            failure = AwsError("ServiceFailure", UNAVAILABLE, 500, sender=False)
            return await self._query_error(
                failure, request, peer, request_id, None, action, namespace, audit=False
            )
        except StoreError as exc:
            message = self._store_failure(exc, service, action)
            failure = AwsError("ServiceFailure", message, 500, sender=False)
            return await self._query_error(
                failure, request, peer, request_id, event, action, namespace
            )
        except Exception:
            log.exception("unhandled error in %s", action)
            failure = AwsError("ServiceFailure", INTERNAL, 500, sender=False)
            return await self._query_error(
                failure, request, peer, request_id, event, action, namespace
            )

    async def _iam(
        self, action: str, caller: Caller | None, params: dict[str, str], event: AuditEvent
    ) -> dict[str, Any]:
        handler = iam_ops.OPERATIONS.get(action)
        if handler is None or caller is None:
            raise AwsError(
                "InvalidAction", f"Could not find operation {action} for version 2010-05-08"
            )
        event.request_parameters = camel(safe_params(params, iam_ops.AUDITABLE_PARAMS)) or None
        event.read_only = action in iam_ops.READ_ONLY
        # IAM answers are never copied into responseElements: CreateAccessKey's holds a secret.
        call = iam_ops.Call(caller, self.store, caller.account, params, root_key=self.root_key)
        return await handler(call)

    async def _sts(
        self,
        action: str,
        caller: Caller | None,
        params: dict[str, str],
        event: AuditEvent,
        peer: Peer,
        region: str,
    ) -> dict[str, Any]:
        handler = sts_ops.OPERATIONS.get(action)
        if handler is None:
            raise AwsError(
                "InvalidAction", f"Could not find operation {action} for version 2011-06-15"
            )
        event.request_parameters = sts_parameters(params) or None
        event.read_only = action in sts_ops.READ_ONLY
        account = caller.account if caller else self.settings.account
        call = sts_ops.Call(
            caller, self.store, self.root_key, self.clock, self.jwks, account, params,
            source_ip=peer.host or None, secure_transport=peer.secure, region=region,
        )  # fmt: skip
        try:
            result = await handler(call)
        except AwsError:
            if action == "AssumeRoleWithWebIdentity":  # refused: still say who and which role
                event.resources = role_resources(params.get("RoleArn"), account)
                event.user_identity = self._refused_web_user(call) or {}
            raise
        if action in sts_ops.CREDENTIAL_ACTIONS:
            event.response_elements = sts_elements(result)
            if action == "AssumeRoleWithWebIdentity":  # CloudTrail's shape for the unsigned call
                event.user_identity = web_identity_user(
                    result["Provider"], result["Audience"], result["SubjectFromWebIdentityToken"]
                )
            if action != "GetSessionToken":
                event.resources = role_resources(params.get("RoleArn"), account)
        return result

    @staticmethod
    def _refused_web_user(call: sts_ops.Call) -> dict[str, Any] | None:
        """The web identity user of a refused AssumeRoleWithWebIdentity whose token's signature
        verified before the refusal (the handler noted it), as a granted call's event names
        it; None when the refusal came first."""
        seen = call.verified
        if not seen:
            return None
        return web_identity_user(
            seen["provider"], seen["audience"][:AUDIT_VALUE_CHARS],
            seen["subject"][:AUDIT_VALUE_CHARS],
        )  # fmt: skip

    async def _query_error(
        self,
        err: AwsError,
        request: Request,
        peer: Peer,
        request_id: str,
        event: AuditEvent | None,
        action: str,
        namespace: str,
        *,
        audit: bool = True,
    ) -> Response:
        if audit:
            if event is None:
                source = (
                    "iam.amazonaws.com" if namespace == iam_ops.NAMESPACE else "sts.amazonaws.com"
                )
                event = self._event(request, peer, request_id, source, action,
                                    self.settings.default_region, None)  # fmt: skip
            event.error_code = err.code
            event.error_message = err.message
            try:
                await self._record(event)
            except AuditError:
                err = AwsError("ServiceFailure", UNAVAILABLE, 500, sender=False)
        status, headers, body = queryproto.encode_error(err, namespace, request_id)
        headers.append(("x-amzn-RequestId", request_id))
        return Response(status, headers, body)
