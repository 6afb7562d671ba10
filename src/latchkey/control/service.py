"""The control plane: the stored configuration, applied all-or-nothing, pushed to listeners.

The store keeps canonical objects. Every change validates the whole resulting set (kinds,
fields, references) before anything is written, then swaps the running ``Config`` at once:
a request already in flight keeps the ``Config`` it started with.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from latchkey.control.issues import ConfigError
from latchkey.control.loader import (
    STORED_PREFIX,
    StoredObject,
    decode_text,
    load_apply,
    load_objects_paths,
    load_objects_text,
    load_stored,
)
from latchkey.control.manifest import Action, Change, merged, plan, sort_objects
from latchkey.control.model import Config, empty_config
from latchkey.store.control import SEEDED_KEY, ControlStore, ObjectRow

log = logging.getLogger("latchkey.control")

# How to get past a stored object that is no longer valid (a file it names has gone, a
# variable is unset), said beside each issue about one.
APPLY_HINT = "stored earlier: apply a corrected {obj} (`latchkey get {kind} {name} -o yaml`)"
START_HINT = (
    "stored earlier: make it valid again, or replace the stored configuration with "
    "`latchkey up --config FILE|DIR` (`latchkey get all -o yaml` reads it while latchkey is down)"
)

Listener = Callable[[Config], None]


class NotFound(KeyError):
    """No object of that kind and name."""


class InUse(ValueError):
    """Other objects refer to the one to delete."""


def _names(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


# The AccessPolicy fields that name objects of each kind (every reference loader._references
# knows; a test holds the two together).
POLICY_FIELDS = {
    "ServerWorkload": ("server",),
    "ClientWorkload": ("clients",),
    "CredentialProvider": ("credentialProvider", "credentialProviders"),
    "AccessCondition": ("conditions",),
    "TrustProvider": ("trustProviders",),
}


def referrers(objects: Sequence[StoredObject], kind: str, name: str) -> list[str]:
    """``AccessPolicy 'p'`` for every object whose spec refers to ``kind`` ``name``."""
    fields = POLICY_FIELDS
    found = []
    for obj in objects:
        names: list[object] = []
        if obj.kind == "AccessPolicy":
            for field in fields.get(kind, ()):
                names += _names(obj.spec.get(field))
        elif obj.kind == "ClientWorkload" and kind == "TrustProvider":
            for identity in _names(obj.spec.get("identities")):
                token = identity.get("token") if isinstance(identity, dict) else None
                if isinstance(token, dict):
                    names.append(token.get("trustProvider"))
        if name in names:
            found.append(f"{obj.kind} '{obj.name}'")
    return found


def _rows(objects: Sequence[StoredObject]) -> list[ObjectRow]:
    return [ObjectRow(o.kind, o.name, o.spec) for o in objects]


def _canonical(objects: Sequence[StoredObject]) -> str:
    return json.dumps([[o.kind, o.name, o.spec] for o in sort_objects(objects)], sort_keys=True)


def _hinted(exc: ConfigError, hint: str) -> ConfigError:
    """``exc`` with ``hint`` beside each issue about a stored object."""
    issues = []
    for issue in exc.issues:
        if issue.file.startswith(STORED_PREFIX):
            obj = issue.file.removeprefix(STORED_PREFIX)
            kind, _, name = obj.partition("/")
            text = hint.format(obj=obj, kind=kind, name=name)
            issue = replace(issue, message=f"{issue.message} [{text}]")
        issues.append(issue)
    return ConfigError(issues)


class ControlPlane:
    def __init__(self, store: ControlStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._objects: list[StoredObject] = []
        self.config: Config = empty_config()
        self.origin = "store"

    # -- start ----------------------------------------------------------------------------

    def start(self, *, config_paths: Sequence[Path], default_text: str) -> Config:
        """The configuration to run with: files given on the command line are the truth;
        otherwise what was applied before; otherwise the default scenario."""
        if config_paths:
            config, objects = load_objects_paths(config_paths)
            self._store.replace_objects(_rows(objects))
            self.origin = ", ".join(map(str, config_paths))
        else:
            stored = self.objects()
            seeded = self._store.meta(SEEDED_KEY)
            # (not "nothing stored": deleting every object is a choice, to deny everything)
            if not self._store.objects_written() or _canonical(stored) == seeded:
                # Never changed since it was seeded: render it again (the cloud may have moved).
                config, objects = load_objects_text(default_text, "default configuration")
                self._store.replace_objects(_rows(objects), {SEEDED_KEY: _canonical(objects)})
                self.origin = "default configuration"
            else:
                objects = stored
                try:
                    config = load_stored(objects)
                except ConfigError as exc:
                    raise _hinted(exc, START_HINT) from None
                self.origin = "stored configuration (latchkey apply)"
        self._objects = sort_objects(objects)
        self.config = config
        return config

    # -- reading --------------------------------------------------------------------------

    def objects(self, kind: str | None = None) -> list[StoredObject]:
        rows = self._store.list_objects()
        found = [StoredObject(r.kind, r.name, r.spec) for r in rows]
        return sort_objects(o for o in found if kind is None or o.kind == kind)

    def get(self, kind: str, name: str) -> StoredObject:
        for obj in self.objects(kind):
            if obj.name == name:
                return obj
        raise NotFound(f"{kind} {name!r} not found")

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- writing --------------------------------------------------------------------------

    def apply(
        self, files: Sequence[tuple[str, str]], *, prune: bool = False, dry_run: bool = False
    ) -> list[Change]:
        """Create or update the objects of ``files`` ((filename, YAML text) pairs), and with
        ``prune`` delete what they leave out. :class:`ConfigError` (every issue, each in its
        file) and :class:`NoObjects` change nothing."""
        with self._lock:
            current = self.objects()
            try:
                applied = load_apply(files, current, prune=prune)
            except ConfigError as exc:
                raise _hinted(exc, APPLY_HINT) from None
            desired, config = applied.desired, applied.config
            changes = plan(current, desired, prune=prune)
            result = merged(current, desired, prune=prune)
            if not dry_run and any(c.action is not Action.UNCHANGED for c in changes):
                self._commit(result, config)
            return changes

    def delete(self, kind: str, name: str, *, dry_run: bool = False) -> Change:
        with self._lock:
            current = self.objects()
            if not any(o.kind == kind and o.name == name for o in current):
                raise NotFound(f"{kind} {name!r} not found")
            users = referrers(current, kind, name)
            if users:
                raise InUse(f"cannot delete {kind} {name!r}: {', '.join(users)} refer(s) to it")
            result = [o for o in current if (o.kind, o.name) != (kind, name)]
            try:
                config = load_stored(result)
            except ConfigError as exc:
                raise _hinted(exc, APPLY_HINT) from None
            if not dry_run:
                self._commit(result, config)
            return Change(kind, name, Action.DELETED)

    def _commit(self, objects: list[StoredObject], config: Config) -> None:
        self._store.replace_objects(_rows(objects))
        self._objects = objects
        self.config = config
        self.origin = "stored configuration (latchkey apply)"
        log.info("configuration changed: %d objects", len(objects))
        for listener in self._listeners:
            try:
                listener(config)
            except Exception:
                log.exception("a configuration listener failed")


def read_paths(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, str]]:
    """(filename, text) for files and the ``*.yaml``/``*.yml`` files of directories.
    ``OSError`` for what cannot be read; :class:`ConfigError` for a file that is not UTF-8."""
    out = []
    for path in map(Path, paths):
        files = [path]
        if path.is_dir():
            files = sorted(
                p
                for p in path.iterdir()
                if p.suffix in {".yaml", ".yml"} and p.is_file() and not p.name.startswith(".")
            )
        for file in files:
            out.append((str(file), decode_text(file.read_bytes(), str(file))))
    return out
