"""The keyring on disk: creation, migration of the single key file, rotation with an overlap
(on an injected clock), pick-up by a running reader, file modes."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest

from latchkey.clock import FrozenClock
from latchkey.crypto.jwk import SigningKey
from latchkey.idp.keyring import (
    DEFAULT_OVERLAP,
    KEYRING_FILE,
    LEGACY_KEY_FILE,
    Keyring,
    KeyringError,
)

pytestmark = pytest.mark.usefixtures("umask_zero")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def kids(keyring: Keyring) -> list[str]:
    return [key.kid for key in keyring.public_keys()]


def test_a_new_data_directory_gets_one_es256_key(tmp_path: Path, clock: FrozenClock) -> None:
    keyring = Keyring.open(tmp_path, clock)
    key = keyring.signing_key()
    assert key.algorithm == "ES256"
    assert kids(keyring) == [key.kid]
    doc = json.loads((tmp_path / KEYRING_FILE).read_text())
    assert doc == {
        "version": 1,
        "keys": [
            {
                "kid": key.kid,
                "algorithm": "ES256",
                "file": LEGACY_KEY_FILE,
                "created": "2025-03-04T05:06:07Z",
                "not_before": "2025-03-04T05:06:07Z",
                "retire_after": None,
            }
        ],
    }
    for name in (KEYRING_FILE, LEGACY_KEY_FILE, "idp-keyring.lock"):
        assert mode(tmp_path / name) == 0o600, name
    assert Keyring.open(tmp_path, clock).signing_key().kid == key.kid  # opened again: the same


def test_rs256_keyring(tmp_path: Path, clock: FrozenClock) -> None:
    keyring = Keyring.open(tmp_path, clock, "RS256")
    assert keyring.signing_key().algorithm == "RS256"
    assert keyring.signing_key().public_jwk()["kty"] == "RSA"


def test_the_single_key_file_is_migrated_in_place(tmp_path: Path, clock: FrozenClock) -> None:
    legacy = SigningKey.load_or_create(tmp_path / LEGACY_KEY_FILE)  # as older releases did
    os.utime(tmp_path / LEGACY_KEY_FILE, (1_700_000_000, 1_700_000_000))
    keyring = Keyring.open(tmp_path, clock)
    assert keyring.signing_key().kid == legacy.kid
    (entry,) = keyring.entries
    assert entry.file == LEGACY_KEY_FILE
    assert entry.created == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    assert mode(tmp_path / KEYRING_FILE) == 0o600
    # asking for another algorithm at start-up rotates to it, keeping the old key published
    switched = Keyring.open(tmp_path, clock, "RS256")
    assert switched.signing_key().algorithm == "RS256"
    assert kids(switched) == [switched.signing_key().kid, legacy.kid]
    old = next(e for e in switched.entries if e.kid == legacy.kid)
    assert old.retire_after == clock.now() + DEFAULT_OVERLAP


def test_a_broken_legacy_key_is_a_clear_error(tmp_path: Path, clock: FrozenClock) -> None:
    (tmp_path / LEGACY_KEY_FILE).write_bytes(b"not a key")
    (tmp_path / LEGACY_KEY_FILE).chmod(0o600)
    with pytest.raises(KeyringError, match="cannot migrate"):
        Keyring.open(tmp_path, clock)


def test_rotation_keeps_the_previous_key_for_the_overlap(
    tmp_path: Path, clock: FrozenClock
) -> None:
    keyring = Keyring.open(tmp_path, clock)
    first = keyring.signing_key().kid
    new, previous = keyring.rotate(overlap=dt.timedelta(seconds=60))
    assert previous.kid == first
    assert previous.retire_after == clock.now() + dt.timedelta(seconds=60)
    assert keyring.signing_key().kid == new.kid != first
    assert new.algorithm == "ES256"  # the current key's algorithm by default
    assert kids(keyring) == [new.kid, first]
    assert mode(tmp_path / new.file) == 0o600
    assert mode(tmp_path / "idp-keys") == 0o700
    assert mode(tmp_path / KEYRING_FILE) == 0o600

    clock.advance(59)
    assert kids(keyring) == [new.kid, first]
    clock.advance(1)
    assert kids(keyring) == [new.kid]  # over: no longer published (no write needed)

    # the next rotation forgets the retired key and deletes its file
    third, _ = keyring.rotate(overlap=dt.timedelta(0))
    assert not (tmp_path / LEGACY_KEY_FILE).exists()
    assert not (tmp_path / new.file).exists()  # overlap 0: gone at once
    assert [e.kid for e in keyring.entries] == [third.kid]
    assert kids(keyring) == [third.kid]


def test_rotation_can_change_the_algorithm(tmp_path: Path, clock: FrozenClock) -> None:
    keyring = Keyring.open(tmp_path, clock)
    new, previous = keyring.rotate("RS256", dt.timedelta(hours=1))
    assert (new.algorithm, previous.algorithm) == ("RS256", "ES256")
    assert [k.algorithm for k in keyring.public_keys()] == ["RS256", "ES256"]


def test_publish_ahead_publishes_before_signing(tmp_path: Path, clock: FrozenClock) -> None:
    keyring = Keyring.open(tmp_path, clock)
    first = keyring.signing_key().kid
    new, previous = keyring.rotate(
        overlap=dt.timedelta(seconds=100), publish_ahead=dt.timedelta(seconds=300)
    )
    assert keyring.signing_key().kid == first  # still signing
    assert kids(keyring) == [first, new.kid]  # but the new key is already published
    assert previous.retire_after == clock.now() + dt.timedelta(seconds=400)
    clock.advance(300)
    assert keyring.signing_key().kid == new.kid
    assert kids(keyring) == [new.kid, first]
    clock.advance(100)
    assert kids(keyring) == [new.kid]


def test_a_running_reader_picks_up_a_rotation(tmp_path: Path, clock: FrozenClock) -> None:
    running = Keyring.open(tmp_path, clock)  # the node
    reads = 0
    original = running._read

    def counting_read() -> None:
        nonlocal reads
        reads += 1
        original()

    running._read = counting_read  # type: ignore[method-assign]
    before = running.signing_key().kid
    for _ in range(3):
        running.public_keys()
    assert reads == 0  # unchanged file: one stat, no read

    new, _ = Keyring.load(tmp_path, clock).rotate(overlap=dt.timedelta(minutes=5))  # the CLI
    assert running.signing_key().kid == new.kid
    assert kids(running) == [new.kid, before]
    assert reads == 1


def test_negative_times_are_refused(tmp_path: Path, clock: FrozenClock) -> None:
    keyring = Keyring.open(tmp_path, clock)
    with pytest.raises(ValueError, match="negative"):
        keyring.rotate(overlap=dt.timedelta(seconds=-1))
    with pytest.raises(ValueError, match="negative"):
        keyring.rotate(publish_ahead=dt.timedelta(seconds=-1))


def test_load_needs_an_existing_keyring(tmp_path: Path, clock: FrozenClock) -> None:
    with pytest.raises(KeyringError, match="no idp keyring"):
        Keyring.load(tmp_path, clock)


def test_a_readable_keyring_file_is_refused(tmp_path: Path, clock: FrozenClock) -> None:
    Keyring.open(tmp_path, clock)
    (tmp_path / KEYRING_FILE).chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(tmp_path, clock)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: "not json", "not a JSON keyring"),
        (lambda doc: doc | {"version": 2}, "unknown keyring format"),
        (lambda doc: doc | {"keys": []}, "every key is retiring"),
        (lambda doc: doc | {"keys": [doc["keys"][0] | {"file": "../x.pem"}]}, "not inside"),
        (lambda doc: doc | {"keys": [doc["keys"][0] | {"algorithm": "HS256"}]}, "ES256|RS256"),
        (lambda doc: doc | {"keys": [doc["keys"][0] | {"algorithm": "RS256"}]}, "does not hold"),
        (lambda doc: doc | {"keys": [doc["keys"][0] | {"created": "soon"}]}, "ISO 8601"),
    ],
    ids=["garbage", "version", "no-key", "escape", "alg", "mismatch", "time"],
)
def test_a_damaged_keyring_is_refused(
    tmp_path: Path, clock: FrozenClock, change: object, message: str
) -> None:
    Keyring.open(tmp_path, clock)
    path = tmp_path / KEYRING_FILE
    changed = change(json.loads(path.read_text()))  # type: ignore[operator]
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(KeyringError, match=message):
        Keyring.load(tmp_path, clock)
