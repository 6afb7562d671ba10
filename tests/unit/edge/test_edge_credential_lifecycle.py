"""The credential cache against a scripted STS on 127.0.0.1: retries of transient failures,
no retry of refusals, background refresh at 80 % (single-flight), cached keys while STS is
down, refusal after expiry, and recovery without a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Awaitable, Callable

import pytest

from latchkey.clock import FrozenClock
from latchkey.control.model import ClientWorkload, CredentialProvider
from latchkey.edge.credentials import CredentialCache, CredentialError
from latchkey.http.h1 import Request, Response
from latchkey.http.server import HttpServer, Peer

START = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
LIFETIME = 3600

ERROR = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>
<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>
<RequestId>r</RequestId></ErrorResponse>"""


class ScriptedSts:
    """Answers each AssumeRoleWithWebIdentity with the next scripted outcome ("ok" mints
    credentials valid LIFETIME seconds from the clock's now)."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.script: list[str] = []
        self.default = "ok"
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: Request, peer: Peer) -> Response:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else self.default
        if outcome == "ok":
            expires = (self.clock.now() + dt.timedelta(seconds=LIFETIME)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            body = (
                '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
                '2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials>'
                f"<AccessKeyId>ASIA{self.calls:016d}</AccessKeyId>"
                "<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
                f"<Expiration>{expires}</Expiration></Credentials>"
                "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            )
            return Response(200, [("Content-Type", "text/xml")], body.encode())
        status, code = outcome.split(":")
        kind = "Receiver" if status.startswith("5") else "Sender"
        body = ERROR.format(kind=kind, code=code, message="scripted")
        return Response(int(status), [("Content-Type", "text/xml")], body.encode())


Scenario = Callable[[ScriptedSts, CredentialProvider], Awaitable[None]]


def run(scenario: Scenario, sts: type[ScriptedSts] = ScriptedSts) -> None:
    """Run ``scenario`` with a scripted STS (``sts``, or a subclass) listening on 127.0.0.1."""

    async def main() -> None:
        scripted = sts(FrozenClock(START))
        server = HttpServer(scripted)
        host, port = await server.start("127.0.0.1", 0)
        provider = CredentialProvider(
            name="kms-federation", type="aws-sts-federation",
            role_arn="arn:aws:iam::000000000000:role/r", audience="sts.amazonaws.com",
            session_duration=LIFETIME, sts_endpoint=f"http://{host}:{port}",
            region="us-east-1", role_session_name=None,
        )  # fmt: skip
        try:
            await scenario(scripted, provider)
        finally:
            await server.close()

    asyncio.run(main())


CLIENT = ClientWorkload(name="app", identities=())


def cache_for(scripted: ScriptedSts) -> CredentialCache:
    def tokens(*, provider: str, client: str, audience: str) -> str:
        return "header.payload.signature"

    return CredentialCache(
        tokens, scripted.clock, ssl.create_default_context(), retry_delays=(0.01, 0.01, 0.01)
    )


def test_transient_failures_are_retried() -> None:
    async def scenario(scripted: ScriptedSts, provider: CredentialProvider) -> None:
        scripted.script = ["500:InternalFailure", "400:IDPCommunicationError", "ok"]
        cache = cache_for(scripted)
        creds = await cache.get(provider, CLIENT)
        assert creds.access_key == "ASIA0000000000000003"
        assert cache.fetches == 3

    run(scenario)


def test_retries_are_bounded() -> None:
    async def scenario(scripted: ScriptedSts, provider: CredentialProvider) -> None:
        scripted.default = "503:ServiceUnavailable"
        cache = cache_for(scripted)
        with pytest.raises(CredentialError, match="ServiceUnavailable"):
            await cache.get(provider, CLIENT)
        assert scripted.calls == 4

    run(scenario)


def test_refusals_are_not_retried() -> None:
    async def scenario(scripted: ScriptedSts, provider: CredentialProvider) -> None:
        scripted.default = "400:InvalidIdentityToken"
        cache = cache_for(scripted)
        with pytest.raises(CredentialError, match="InvalidIdentityToken: scripted"):
            await cache.get(provider, CLIENT)
        assert scripted.calls == 1

    run(scenario)


def test_background_refresh_at_80_percent_is_single_flight() -> None:
    async def scenario(scripted: ScriptedSts, provider: CredentialProvider) -> None:
        cache = cache_for(scripted)
        first = await cache.get(provider, CLIENT)
        scripted.clock.advance(LIFETIME * 0.85)
        scripted.gate = asyncio.Event()  # hold the refresh until every request has been served
        served = await asyncio.gather(*(cache.get(provider, CLIENT) for _ in range(10)))
        assert {c.access_key for c in served} == {first.access_key}  # nobody waited for STS
        scripted.gate.set()
        for _ in range(100):
            if (await cache.get(provider, CLIENT)).access_key != first.access_key:
                break
            await asyncio.sleep(0.01)
        assert (await cache.get(provider, CLIENT)).access_key == "ASIA0000000000000002"
        assert scripted.calls == 2
        assert cache.background_refreshes == 1

    run(scenario)


def test_sts_down_serves_cached_then_refuses_then_recovers() -> None:
    async def scenario(scripted: ScriptedSts, provider: CredentialProvider) -> None:
        cache = cache_for(scripted)
        first = await cache.get(provider, CLIENT)
        scripted.default = "503:ServiceUnavailable"
        scripted.clock.advance(LIFETIME * 0.9)
        assert (await cache.get(provider, CLIENT)).access_key == first.access_key
        for _ in range(500):  # the background refresh fails after its retries
            if cache.failures:
                break
            await asyncio.sleep(0.01)
        assert cache.failures == 1
        assert (await cache.get(provider, CLIENT)).access_key == first.access_key
        scripted.clock.advance(LIFETIME * 0.1)  # past expiry (minus the safety margin)
        with pytest.raises(CredentialError, match="no usable credentials for client app"):
            await cache.get(provider, CLIENT)
        scripted.default = "ok"
        recovered = await cache.get(provider, CLIENT)
        assert recovered.access_key != first.access_key

    run(scenario)
