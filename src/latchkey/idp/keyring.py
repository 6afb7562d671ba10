"""The idp's signing keys on disk: one active key, plus retiring keys still published.

Files in the data directory (all ``0600``, written atomically):

- ``idp-keyring.json``: ``{"version": 1, "keys": [{"kid", "algorithm", "file", "created",
  "not_before", "retire_after"}]}``; times are ISO 8601 UTC. The JWKS publishes every key whose
  ``retire_after`` is null or still ahead, so a key made with a ``not_before`` in the future is
  published before it signs. Tokens are signed by the published key with the latest
  ``not_before`` that has passed.
- ``idp-signing-key.pem``: the first key (its historic name; a data directory from before the
  keyring had only this file and is migrated in place on first start).
- ``idp-keys/<kid>.pem``: every key made by a rotation.

Writers (start-up, ``latchkey idp rotate``) hold an exclusive ``flock`` on
``idp-keyring.lock``; a running node re-reads the metadata when its mtime/inode changes, which
it checks (one ``stat``) on every token and JWKS request, so a rotation needs no restart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from latchkey.clock import Clock
from latchkey.crypto.jwk import ALGORITHMS, DEFAULT_ALGORITHM, SigningKey
from latchkey.secretfile import private_dir, read_secret_file, write_secret_file

KEYRING_FILE = "idp-keyring.json"
LOCK_FILE = "idp-keyring.lock"
LEGACY_KEY_FILE = "idp-signing-key.pem"
KEY_DIR = "idp-keys"
DEFAULT_OVERLAP = dt.timedelta(hours=24)


class KeyringError(Exception):
    """The keyring is missing or unusable; the message names the file (never key material)."""


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object, where: str) -> dt.datetime:
    if not isinstance(value, str):
        raise KeyringError(f"{where}: expected an ISO 8601 time")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise KeyringError(f"{where}: {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: str
    algorithm: str
    file: str  # relative to the data directory
    created: dt.datetime
    not_before: dt.datetime  # signs from then on (published before, if made ahead)
    retire_after: dt.datetime | None = None  # published until then

    def published(self, now: dt.datetime) -> bool:
        return self.retire_after is None or now < self.retire_after

    def state(self, now: dt.datetime, signing: str) -> str:
        if self.kid == signing:
            return "active"
        if not self.published(now):
            return "retired"
        return "pending" if now < self.not_before else "retiring"

    def to_json(self) -> dict[str, object]:
        retire = None if self.retire_after is None else _iso(self.retire_after)
        return {
            "kid": self.kid,
            "algorithm": self.algorithm,
            "file": self.file,
            "created": _iso(self.created),
            "not_before": _iso(self.not_before),
            "retire_after": retire,
        }

    @classmethod
    def from_json(cls, doc: object, where: str) -> KeyEntry:
        if not isinstance(doc, dict):
            raise KeyringError(f"{where}: a key entry is not an object")
        kid, alg, file = doc.get("kid"), doc.get("algorithm"), doc.get("file")
        if not isinstance(kid, str) or not isinstance(file, str) or alg not in ALGORITHMS:
            raise KeyringError(f"{where}: a key entry needs kid, file and algorithm ES256|RS256")
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise KeyringError(f"{where}: key file {file!r} is not inside the data directory")
        retire = doc.get("retire_after")
        created = _parse_time(doc.get("created"), where)
        not_before = doc.get("not_before")
        return cls(
            kid=kid,
            algorithm=str(alg),
            file=file,
            created=created,
            not_before=created if not_before is None else _parse_time(not_before, where),
            retire_after=None if retire is None else _parse_time(retire, where),
        )


class Keyring:
    """The keyring of one data directory; implements the issuer's key source."""

    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.path = self.data_dir / KEYRING_FILE
        self.entries: tuple[KeyEntry, ...] = ()
        self._keys: dict[str, SigningKey] = {}
        self._seen: tuple[int, int, int] | None = None

    # -- reading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, data_dir: Path, clock: Clock) -> Keyring:
        """An existing keyring (``KeyringError`` if there is none)."""
        keyring = cls(data_dir, clock)
        if not keyring.path.exists():
            raise KeyringError(f"no idp keyring in {data_dir} (start `latchkey up` once)")
        keyring.refresh()
        return keyring

    def _stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_ino, st.st_size

    def refresh(self) -> None:
        """Re-read the metadata if the file changed since the last read (one ``stat``)."""
        try:
            stamp = self._stamp()
        except FileNotFoundError:
            raise KeyringError(f"the idp keyring {self.path} is gone") from None
        if stamp == self._seen:
            return
        self._read()
        self._seen = stamp

    def _read(self) -> None:
        where = str(self.path)
        try:
            doc = json.loads(read_secret_file(self.path))
        except (ValueError, UnicodeDecodeError):
            raise KeyringError(f"{where}: not a JSON keyring") from None
        except PermissionError as exc:
            raise KeyringError(str(exc)) from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise KeyringError(f"{where}: unknown keyring format")
        raw = doc.get("keys")
        raw = raw if isinstance(raw, list) else []
        entries = tuple(KeyEntry.from_json(entry, where) for entry in raw)
        if not any(entry.retire_after is None for entry in entries):
            raise KeyringError(f"{where}: every key is retiring; rotate to make a new one")
        now = self.clock.now()
        keys = {}
        for entry in entries:
            if entry.published(now):
                keys[entry.kid] = self._keys.get(entry.kid) or self._load_key(entry)
        self.entries, self._keys = entries, keys

    def _load_key(self, entry: KeyEntry) -> SigningKey:
        path = self.data_dir / entry.file
        try:
            key = SigningKey.load(path)
        except (OSError, ValueError) as exc:
            raise KeyringError(f"cannot load idp key {entry.kid}: {exc}") from None
        if key.kid != entry.kid or key.algorithm != entry.algorithm:
            raise KeyringError(f"{path} does not hold key {entry.kid} ({entry.algorithm})")
        return key

    # -- the issuer's key source ------------------------------------------------------------------

    def _published(self, now: dt.datetime) -> list[KeyEntry]:
        return [e for e in self.entries if e.published(now) and e.kid in self._keys]

    def active_entry(self) -> KeyEntry:
        """The entry of the key that signs now."""
        now = self.clock.now()
        ready = [e for e in self._published(now) if e.not_before <= now]
        if not ready:
            raise KeyringError(f"{self.path}: no key signs now; rotate to make a new one")
        # the latest to start signing; on a tie the one added last (entries are in order)
        return max(reversed(ready), key=lambda e: e.not_before)

    @property
    def active_kid(self) -> str:
        return self.active_entry().kid

    def signing_key(self) -> SigningKey:
        """The key that signs now (after picking up a rotation made by another process)."""
        self.refresh()
        return self._keys[self.active_entry().kid]

    def public_keys(self) -> list[SigningKey]:
        """Every key the JWKS publishes now: the signing one first, then pending and
        retiring ones."""
        self.refresh()
        active = self.active_entry().kid
        others = [e.kid for e in self._published(self.clock.now()) if e.kid != active]
        return [self._keys[kid] for kid in (active, *others)]

    # -- writing (under the lock) -------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, entries: tuple[KeyEntry, ...]) -> None:
        doc = {"version": 1, "keys": [e.to_json() for e in entries]}
        write_secret_file(self.path, json.dumps(doc, indent=2).encode() + b"\n")
        self._seen = None
        self.refresh()

    @classmethod
    def open(cls, data_dir: Path, clock: Clock, algorithm: str | None = None) -> Keyring:
        """The keyring, created (or migrated from ``idp-signing-key.pem``) when missing.

        With ``algorithm`` set and an active key of another algorithm, the keyring rotates to
        a new key of that algorithm (the old one stays published for :data:`DEFAULT_OVERLAP`).
        Generating an RSA key is slow: call this before the event loop or in a thread.
        """
        keyring = cls(data_dir, clock)
        with keyring._locked():
            if not keyring.path.exists():
                keyring._create(algorithm or DEFAULT_ALGORITHM)
            keyring.refresh()
            if algorithm is not None and keyring.signing_key().algorithm != algorithm:
                keyring._rotate(algorithm, DEFAULT_OVERLAP, dt.timedelta(0))
        return keyring

    def _create(self, algorithm: str) -> None:
        legacy = self.data_dir / LEGACY_KEY_FILE
        try:
            key = SigningKey.load(legacy)  # a data directory from before the keyring
            created = dt.datetime.fromtimestamp(legacy.stat().st_mtime, dt.UTC)
        except FileNotFoundError:
            key = SigningKey.generate(algorithm)
            write_secret_file(legacy, key.private_pem())
            created = self.clock.now()
        except (OSError, ValueError) as exc:
            raise KeyringError(f"cannot migrate {legacy}: {exc}") from None
        self._write((KeyEntry(key.kid, key.algorithm, LEGACY_KEY_FILE, created, created),))

    def rotate(
        self,
        algorithm: str | None = None,
        overlap: dt.timedelta = DEFAULT_OVERLAP,
        publish_ahead: dt.timedelta = dt.timedelta(0),
    ) -> tuple[KeyEntry, KeyEntry]:
        """Make a new key that signs from ``now + publish_ahead`` on (published at once); the
        keys before it stay published until ``overlap`` after that.

        Keys whose publication has ended are dropped and their files deleted.
        Returns ``(new, previous)`` (``previous``: the key that signed until now).
        """
        with self._locked():
            self._seen = None
            self.refresh()
            return self._rotate(algorithm, overlap, publish_ahead)

    def _rotate(
        self, algorithm: str | None, overlap: dt.timedelta, ahead: dt.timedelta
    ) -> tuple[KeyEntry, KeyEntry]:
        if overlap < dt.timedelta(0) or ahead < dt.timedelta(0):
            raise ValueError("the overlap and the publication ahead cannot be negative")
        now = self.clock.now()
        previous = self.active_entry()
        key = SigningKey.generate(algorithm or previous.algorithm)
        private_dir(self.data_dir / KEY_DIR)
        file = f"{KEY_DIR}/{key.kid}.pem"
        write_secret_file(self.data_dir / file, key.private_pem())
        new = KeyEntry(key.kid, key.algorithm, file, now, now + ahead)
        kept: list[KeyEntry] = []
        dropped: list[KeyEntry] = []
        for entry in self.entries:
            if entry.retire_after is None:
                entry = replace(entry, retire_after=new.not_before + overlap)
            (kept if entry.published(now) else dropped).append(entry)
        self._write((*kept, new))
        for entry in dropped:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / entry.file).unlink()
        return new, next(e for e in kept + dropped if e.kid == previous.kid)
