"""Where a node's root key comes from, and the check that it is the store's key.

Three sources (``latchkey up`` picks one):

- ``file`` (default): ``<data-dir>/root.key``, 32 raw bytes, mode 0600, created on first start;
- ``env``: ``LATCHKEY_ROOT_KEY``, 32 bytes in hex (64 digits) or base64;
- ``passphrase``: ``LATCHKEY_ROOT_PASSPHRASE`` or a 0600 file (``--root-key-passphrase-file``),
  stretched with scrypt; the salt and cost live in ``<data-dir>/root-key.scrypt.json`` (0600).

Whatever the source, ``<data-dir>/root-key.check`` (0600) holds a check value made with the key
when the store was first opened; a key that does not open it is refused at start-up with
:class:`RootKeyError` ("... does not open this store ..."), before the store is touched. A data
directory from before check values existed gets one on its first start with a key that matches
its ``root.key``. Error messages name variables and paths, never a key or a passphrase.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from latchkey.crypto.rootkey import RootKey, ScryptParams
from latchkey.secretfile import read_secret_file, write_secret_file

__all__ = [
    "CHECK_FILE",
    "ENV_KEY",
    "ENV_PASSPHRASE",
    "KDF_FILE",
    "KEY_FILE",
    "RootKeyError",
    "RootKeySource",
    "SourceKind",
    "decode_root_key",
    "open_root_key",
    "source_from",
]

log = logging.getLogger("latchkey.rootkey")

ENV_KEY = "LATCHKEY_ROOT_KEY"
ENV_PASSPHRASE = "LATCHKEY_ROOT_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
KEY_FILE = "root.key"
KDF_FILE = "root-key.scrypt.json"
CHECK_FILE = "root-key.check"
_CHECK_VERSION = 1


class RootKeyError(Exception):
    """The root key cannot be had, or is not the store's: a clear start-up error."""


class SourceKind(enum.Enum):
    FILE = "file"
    ENV = "env"
    PASSPHRASE = "passphrase"  # noqa: S105 - a source name


@dataclass(frozen=True, slots=True)
class RootKeySource:
    """A root key source; ``secret`` (key bytes or passphrase) never shows in its repr."""

    kind: SourceKind
    origin: str = ""  # what to name in messages: a variable or a file
    secret: bytes = field(default=b"", repr=False)

    @classmethod
    def file(cls) -> RootKeySource:
        return cls(SourceKind.FILE)

    @classmethod
    def env(cls, value: str, origin: str = ENV_KEY) -> RootKeySource:
        return cls(SourceKind.ENV, origin, decode_root_key(value, origin))

    @classmethod
    def passphrase(cls, value: bytes, origin: str) -> RootKeySource:
        if not value:
            raise RootKeyError(f"the root key passphrase from {origin} is empty")
        return cls(SourceKind.PASSPHRASE, origin, value)

    def describe(self, data_dir: Path) -> str:
        if self.kind is SourceKind.FILE:
            return f"the file {data_dir / KEY_FILE}"
        if self.kind is SourceKind.ENV:
            return f"${self.origin}" if self.origin == ENV_KEY else self.origin
        where = f"${self.origin}" if self.origin == ENV_PASSPHRASE else self.origin
        return f"the passphrase in {where}"


def decode_root_key(value: str, origin: str = ENV_KEY) -> bytes:
    """32 bytes from 64 hex digits or base64 (standard or URL-safe, padded or not)."""
    text = value.strip()
    if len(text) == 64 and all(c in string.hexdigits for c in text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4),
                               validate=True)  # fmt: skip
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise RootKeyError(
            f"{origin} must hold a 32-byte root key as 64 hex digits or base64 "
            "(e.g. the output of `openssl rand -base64 32`)"
        )
    return raw


def source_from(environ: Mapping[str, str], passphrase_file: Path | None = None) -> RootKeySource:
    """The source ``latchkey up`` was given: at most one of ``LATCHKEY_ROOT_KEY``,
    ``LATCHKEY_ROOT_PASSPHRASE`` and a passphrase file; none means the key file."""
    given = [
        name
        for name, present in (
            (ENV_KEY, ENV_KEY in environ),
            (ENV_PASSPHRASE, ENV_PASSPHRASE in environ),
            ("--root-key-passphrase-file", passphrase_file is not None),
        )
        if present
    ]
    if len(given) > 1:
        raise RootKeyError(f"give one root key source, not {' and '.join(given)}")
    if ENV_KEY in environ:
        return RootKeySource.env(environ[ENV_KEY])
    if ENV_PASSPHRASE in environ:
        return RootKeySource.passphrase(environ[ENV_PASSPHRASE].encode(), ENV_PASSPHRASE)
    if passphrase_file is not None:
        try:
            raw = read_secret_file(passphrase_file)
        except (OSError, ValueError) as exc:
            raise RootKeyError(f"cannot read the root key passphrase file: {exc}") from None
        return RootKeySource.passphrase(_one_line(raw), str(passphrase_file))
    return RootKeySource.file()


def _one_line(raw: bytes) -> bytes:
    """A passphrase file's content without its final line break."""
    for ending in (b"\r\n", b"\n"):
        if raw.endswith(ending):
            return raw[: -len(ending)]
    return raw


# -- opening -----------------------------------------------------------------------------------


def open_root_key(data_dir: Path, source: RootKeySource, *, store: Path) -> RootKey:
    """The root key from ``source``, refused unless it opens the store in ``data_dir``.

    ``store`` is the database file: when it exists without a check value (a data directory
    from before check values), the key must equal the one in ``root.key``.
    """
    check_path = data_dir / CHECK_FILE
    check = _read_check(check_path)
    existing = check is not None or store.exists()
    where = source.describe(data_dir)
    if source.kind is SourceKind.FILE:
        key = _key_file(data_dir / KEY_FILE, existing=existing, store=store)
    elif source.kind is SourceKind.ENV:
        key = RootKey.from_bytes(source.secret)
    else:
        key = _derive(data_dir / KDF_FILE, source.secret, existing=existing, store=store)
    if check is not None:
        if not key.opens(check):
            raise RootKeyError(
                f"the root key from {where} does not open this store ({data_dir}): it is not the "
                "key the store was made with"
                + (" (wrong passphrase?)" if source.kind is SourceKind.PASSPHRASE else "")
            )
    elif store.exists() and source.kind is not SourceKind.FILE:
        _check_legacy(data_dir, key, where, store)
    if check is None:
        doc = {"version": _CHECK_VERSION, "check": base64.b64encode(key.check_value()).decode()}
        write_secret_file(check_path, json.dumps(doc).encode())
    log.info("root key from %s", where)
    return key


def _read_check(path: Path) -> bytes | None:
    try:
        doc = json.loads(read_secret_file(path))
        if doc.get("version") != _CHECK_VERSION:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        return base64.b64decode(doc["check"], validate=True)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise RootKeyError(str(exc)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RootKeyError(f"the root key check file {path} is unreadable: {exc}") from None


def _key_file(path: Path, *, existing: bool, store: Path) -> RootKey:
    if existing and not path.exists():
        raise RootKeyError(
            f"the root key file {path} is missing, but {path.parent} holds a store made with a "
            f"root key ({store.name}); give that key ({ENV_KEY}, {ENV_PASSPHRASE} or "
            "--root-key-passphrase-file) or restore the file"
        )
    try:
        return RootKey.load_or_create(path)
    except (OSError, ValueError) as exc:
        raise RootKeyError(str(exc)) from None


def _derive(path: Path, passphrase: bytes, *, existing: bool, store: Path) -> RootKey:
    try:
        params = _load_params(path)
    except FileNotFoundError:
        if existing:
            raise RootKeyError(
                f"this store ({store}) was not made with a passphrase: {path} is missing"
            ) from None
        params = ScryptParams.generate()
        doc = {"kdf": "scrypt", "salt": base64.b64encode(params.salt).decode(),
               "n": params.n, "r": params.r, "p": params.p}  # fmt: skip
        write_secret_file(path, json.dumps(doc).encode())
    return RootKey.from_passphrase(passphrase, params)


def _load_params(path: Path) -> ScryptParams:
    try:
        doc = json.loads(read_secret_file(path))
        if doc.get("kdf") != "scrypt":
            raise ValueError(f"unknown kdf {doc.get('kdf')!r}")
        salt = base64.b64decode(doc["salt"], validate=True)
        return ScryptParams(salt, n=int(doc["n"]), r=int(doc["r"]), p=int(doc["p"]))
    except FileNotFoundError:
        raise
    except PermissionError as exc:
        raise RootKeyError(str(exc)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RootKeyError(f"the root key parameters file {path} is unreadable: {exc}") from None


def _check_legacy(data_dir: Path, key: RootKey, where: str, store: Path) -> None:
    """A store without a check value was made with ``root.key``: the key must be that one."""
    path = data_dir / KEY_FILE
    try:
        on_disk = RootKey.load_or_create(path) if path.exists() else None
    except (OSError, ValueError) as exc:
        raise RootKeyError(str(exc)) from None
    if on_disk is None or not on_disk.same_key(key):
        raise RootKeyError(
            f"the root key from {where} does not open this store ({data_dir}): the store has no "
            f"check value ({CHECK_FILE}) and the key is not the one in {path}; start it once "
            "with its root key file"
        )
