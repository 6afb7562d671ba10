"""The credential cache follows the configuration: an edited credential provider (another role,
audience, STS endpoint, duration, session name) never gets keys fetched for its old
configuration, ``retain`` drops what a new configuration no longer has, and the RoleSessionName
of long client names stays distinct. Against the scripted STS of the lifecycle tests."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import pytest
from test_edge_credential_lifecycle import CLIENT, ScriptedSts, cache_for
from test_edge_credential_lifecycle import run as lifecycle_run

from latchkey.clock import FrozenClock
from latchkey.control.model import ClientWorkload, Config, CredentialProvider
from latchkey.edge.credentials import role_session_name
from latchkey.http.h1 import Request, Response
from latchkey.http.server import Peer


class RecordingSts(ScriptedSts):
    """The scripted STS, remembering the form of every call."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.forms: list[dict[str, str]] = []
        self.arrived = asyncio.Event()  # set by the first call

    async def __call__(self, request: Request, peer: Peer) -> Response:
        self.forms.append({k: v[0] for k, v in parse_qs(request.body.decode()).items()})
        self.arrived.set()
        return await super().__call__(request, peer)


def run(scenario: Callable[[RecordingSts, CredentialProvider], Awaitable[None]]) -> None:
    """Run ``scenario`` with a recording scripted STS listening on 127.0.0.1."""
    lifecycle_run(scenario, RecordingSts)  # type: ignore[arg-type]  # (a ScriptedSts subclass)


ADMIN = "arn:aws:iam::000000000000:role/admin"
READONLY = "arn:aws:iam::000000000000:role/readonly"


def localhost(provider: CredentialProvider) -> str:
    """The same scripted STS, spelt differently (another endpoint as far as the cache knows)."""
    assert provider.sts_endpoint is not None
    return provider.sts_endpoint.replace("127.0.0.1", "localhost")


@pytest.mark.parametrize(
    ("field", "changed"),
    [
        ("role_arn", lambda p: READONLY),
        ("audience", lambda p: "another-audience"),
        ("session_duration", lambda p: 900),
        ("role_session_name", lambda p: "renamed"),
        ("sts_endpoint", localhost),
    ],
)
def test_an_edited_provider_fetches_anew(
    field: str, changed: Callable[[CredentialProvider], object]
) -> None:
    async def scenario(scripted: RecordingSts, provider: CredentialProvider) -> None:
        cache = cache_for(scripted)
        admin = dataclasses.replace(provider, role_arn=ADMIN)
        first, how = await cache.get_with_result(admin, CLIENT)
        assert how == "fetched"
        edited = dataclasses.replace(admin, **{field: changed(admin)})
        second, how = await cache.get_with_result(edited, CLIENT)
        assert how == "fetched"
        assert second != first
        assert scripted.calls == 2
        sent = scripted.forms[-1]
        assert sent["RoleArn"] == edited.role_arn
        assert sent["DurationSeconds"] == str(edited.session_duration)
        if edited.role_session_name:
            assert sent["RoleSessionName"] == edited.role_session_name
        # and the new keys are the ones cached for the edited provider
        assert await cache.get_with_result(edited, CLIENT) == (second, "cached")
        assert scripted.calls == 2

    run(scenario)


def test_an_unchanged_provider_of_a_reloaded_configuration_keeps_its_keys() -> None:
    async def scenario(scripted: RecordingSts, provider: CredentialProvider) -> None:
        cache = cache_for(scripted)
        first = await cache.get(provider, CLIENT)
        reloaded = dataclasses.replace(provider)  # equal, another object
        assert reloaded is not provider
        assert await cache.get_with_result(reloaded, CLIENT) == (first, "cached")
        assert scripted.calls == 1

    run(scenario)


def config_of(providers: tuple[CredentialProvider, ...], clients: tuple[str, ...]) -> Config:
    return Config((), providers, tuple(ClientWorkload(name=c, identities=()) for c in clients), ())


def test_retain_drops_changed_and_removed_providers_and_clients() -> None:
    async def scenario(scripted: RecordingSts, provider: CredentialProvider) -> None:
        cache = cache_for(scripted)
        other = dataclasses.replace(provider, name="other")
        bob = ClientWorkload(name="bob", identities=())
        got = {
            (p.name, c.name): await cache.get(p, c)
            for p in (provider, other)
            for c in (CLIENT, bob)
        }
        assert scripted.calls == 4
        edited = dataclasses.replace(provider, role_arn=READONLY)
        # provider edited, client bob removed: of the four, only (other, app) is kept
        assert cache.retain(config_of((edited, other), (CLIENT.name,))) == 3
        assert await cache.get_with_result(other, CLIENT) == (got["other", "app"], "cached")
        for p, client in ((provider, CLIENT), (other, bob), (edited, CLIENT)):
            assert (await cache.get_with_result(p, client))[1] == "fetched"
        assert scripted.calls == 7
        # the provider as it was is gone from this configuration too
        assert cache.retain(config_of((edited, other), (CLIENT.name, bob.name))) == 1
        assert (await cache.get_with_result(provider, CLIENT))[1] == "fetched"

    run(scenario)


def test_a_refresh_retired_while_in_flight_is_not_cached() -> None:
    async def scenario(scripted: RecordingSts, provider: CredentialProvider) -> None:
        cache = cache_for(scripted)
        scripted.gate = asyncio.Event()
        waiting = asyncio.create_task(cache.get(provider, CLIENT))
        await scripted.arrived.wait()
        edited = dataclasses.replace(provider, role_arn=READONLY)
        cache.retain(config_of((edited,), (CLIENT.name,)))  # while STS is still answering
        scripted.gate.set()
        await waiting  # whoever waited still gets an answer
        assert (await cache.get_with_result(provider, CLIENT))[1] == "fetched"  # not cached
        assert scripted.calls == 2

    run(scenario)


def test_long_client_names_get_distinct_session_names() -> None:
    async def scenario(scripted: RecordingSts, provider: CredentialProvider) -> None:
        cache = cache_for(scripted)
        a = "billing-" + "x" * 50 + "-prod"
        b = "billing-" + "x" * 50 + "-test"
        assert len(a) == len(b) == 63
        for name in (a, b):
            await cache.get(provider, ClientWorkload(name=name, identities=()))
        sent = [form["RoleSessionName"] for form in scripted.forms]
        assert sent[0] != sent[1]
        for name, session in zip((a, b), sent, strict=True):
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            assert session == f"latchkey-{name}"[:55] + "-" + digest
            assert len(session) == 64

    run(scenario)


@pytest.mark.parametrize(
    ("client", "configured", "expected"),
    [
        ("app", None, "latchkey-app"),
        ("a" * 55, None, "latchkey-" + "a" * 55),  # exactly 64: kept as it is
        ("app", "chosen-name", "chosen-name"),
    ],
)
def test_session_names_that_fit_are_unchanged(
    client: str, configured: str | None, expected: str
) -> None:
    provider = CredentialProvider(
        name="p", type="aws-sts-federation", role_arn="arn:aws:iam::000000000000:role/r",
        audience="sts", session_duration=3600, sts_endpoint=None, region="us-east-1",
        role_session_name=configured,
    )  # fmt: skip
    assert role_session_name(provider, ClientWorkload(name=client, identities=())) == expected
