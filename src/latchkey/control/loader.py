"""Load configuration from YAML, reporting every problem with file:line:column.

YAML is composed (never constructed with an unsafe loader) into nodes so each
value's position is known. Nodes become plain Python while a map from field path
to position is kept; pydantic errors are then pinned to the deepest node on their
path. After all documents are validated, cross-object rules run (unique names,
references that resolve, distinct host:port pairs). All problems of all files are
collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from latchkey.control import model, schema
from latchkey.control.conditions import AccessCondition
from latchkey.control.issues import ConfigError, ConfigIssue, Loc, issue_at, yaml_error_issue
from latchkey.edge.inject import check_secret

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "decode_text",
    "load_apply",
    "load_config_file",
    "load_config_paths",
    "load_config_text",
    "load_stored",
]

_MAX_NODES = 100_000  # a guard against alias bombs ("billion laughs")
_BAD_SCALAR = object()  # stands in for a scalar YAML could not construct


class _Document:
    """One YAML document turned into plain data, remembering where each value was."""

    def __init__(self, file: str, root: Node, *, stored: bool = False) -> None:
        self.file = file
        self.stored = stored  # an object already in the control store, not one being applied
        self.root_mark = root.start_mark
        self.values: dict[Loc, yaml.Mark] = {}
        self.keys: dict[Loc, yaml.Mark] = {}
        self.issues: list[ConfigIssue] = []
        self.bad: set[Loc] = set()
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0
        self.data = self._convert(root, ())

    def issue(self, mark: yaml.Mark, loc: Loc, message: str) -> ConfigIssue:
        return issue_at(self.file, mark, loc, message)

    def mark_for(self, loc: Loc) -> yaml.Mark:
        """The position of the deepest node that exists along ``loc``."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return self.root_mark

    def _convert(self, node: Node, loc: Loc) -> object:
        self.values[loc] = node.start_mark
        self._count += 1
        if self._count > _MAX_NODES:
            raise ConfigError([self.issue(node.start_mark, loc, "document is too large")])
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if id(node) in self._active:
            raise ConfigError([self.issue(node.start_mark, loc, "recursive alias")])
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self._convert(child, (*loc, i)) for i, child in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            return self._convert_mapping(node, loc)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, loc: Loc) -> object:
        """Resolve a scalar by its (safe) tag: int, bool, null, str, timestamp..."""
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            self.bad.add(loc)
            self.issues.append(self.issue(node.start_mark, loc, f"bad value: {exc}"))
            return _BAD_SCALAR

    def _convert_mapping(self, node: MappingNode, loc: Loc) -> dict[object, object]:
        self._constructor.flatten_mapping(node)  # resolves "<<" merge keys
        result: dict[object, object] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node, loc) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                if key is not _BAD_SCALAR:  # (a bad scalar was reported already)
                    message = "mapping keys must be plain strings"
                    self.issues.append(self.issue(key_node.start_mark, loc, message))
                continue
            path: Loc = (*loc, key)
            if key in result:
                self.issues.append(self.issue(key_node.start_mark, path, "duplicate key"))
            self.keys[path] = key_node.start_mark
            result[key] = self._convert(value_node, path)
        return result

    def pydantic_issue(self, error: ErrorDetails) -> ConfigIssue:
        """Translate one pydantic error into an issue at the right line and column."""
        loc: Loc = tuple(error["loc"])
        kind, message = error["type"], error["msg"]
        mark = self.mark_for(loc)
        if kind == "missing":
            mark, message = self.mark_for(loc[:-1]), "missing required field"
        elif kind == "field_error":  # a model's rule about one of its fields (schema.field_error)
            ctx = error.get("ctx", {})
            loc = (*loc, str(ctx["field"]))
            mark, message = self.keys.get(loc) or self.mark_for(loc), str(ctx["message"])
        elif kind == "extra_forbidden":
            mark, message = self.keys.get(loc, mark), f"unknown field {loc[-1]!r}"
        elif kind == "value_error" and "error" in error.get("ctx", {}):
            message = str(error.get("ctx", {})["error"])
        elif kind in {"model_type", "dict_type"}:
            message = "expected a mapping"
        elif (
            isinstance(error["input"], str | int | float | bool) or error["input"] is None
        ) and not _may_be_secret(loc):
            message = f"{message} (got {error['input']!r})"
        return self.issue(mark, loc, message)


_SECRET_FIELDS = ("secret", "token", "password", "header")


def _may_be_secret(loc: Loc) -> bool:
    """Whether a field's value may be a credential (misplaced or not): errors do not echo it."""
    return any(
        isinstance(part, str) and any(word in part.lower() for word in _SECRET_FIELDS)
        for part in loc
    )


def _references(parsed: schema.Document) -> list[tuple[Loc, str, str]]:
    """(field, kind, name) for every object a document refers to."""
    if isinstance(parsed, schema.ClientWorkloadDocument):
        return [
            (("spec", "identities", i, "token", "trustProvider"), "TrustProvider",
             identity.token.trust_provider)
            for i, identity in enumerate(parsed.spec.identities)
            if identity.token is not None
        ]  # fmt: skip
    if not isinstance(parsed, schema.AccessPolicyDocument):
        return []
    spec = parsed.spec
    refs: list[tuple[Loc, str, str]] = [
        (("spec", "clients", i), "ClientWorkload", name) for i, name in enumerate(spec.clients)
    ]
    refs.append((("spec", "server"), "ServerWorkload", spec.server))
    if spec.credential_providers is not None:
        refs += [
            (("spec", "credentialProviders", i), "CredentialProvider", name)
            for i, name in enumerate(spec.credential_providers)
        ]
    elif spec.credential_provider is not None:
        refs.append(
            (("spec", "credentialProvider"), "CredentialProvider", spec.credential_provider)
        )
    refs += [
        (("spec", "conditions", i), "AccessCondition", name)
        for i, name in enumerate(spec.conditions)
    ]
    refs += [
        (("spec", "trustProviders", i), "TrustProvider", name)
        for i, name in enumerate(spec.trust_providers)
    ]
    return refs


def _scheme_problems(
    spec: schema.AccessPolicySpec,
    server: schema.ServerWorkloadDocument,
    providers: dict[str, schema.CredentialProviderDocument],
) -> list[tuple[Loc, str]]:
    """(field, message) for each way the policy's providers do not fit the server's scheme."""
    scheme = model.AuthScheme(server.spec.authentication.scheme)
    where = f"ServerWorkload {server.metadata.name!r} uses scheme {scheme.value}"
    if scheme is model.AuthScheme.NONE:
        return []  # nothing is injected: providers are optional (and unused)
    if not spec.providers:
        return [(("spec", "credentialProvider"),
                 f"{where}: give credentialProvider or credentialProviders")]  # fmt: skip
    wanted = "aws-sts-federation" if scheme is model.AuthScheme.AWS_SIGV4 else "static"
    problems: list[tuple[Loc, str]] = []
    for i, name in enumerate(spec.providers):
        loc: Loc = ("spec", "credentialProviders", i)
        if spec.credential_providers is None:
            loc = ("spec", "credentialProvider")
        provider = providers.get(name)
        if provider is None:
            continue  # missing (reported above) or invalid (reported where it is)
        if provider.spec.type != wanted:
            problems.append((loc, f"{where}, which needs a CredentialProvider of type "
                                  f"{wanted}; {name!r} is {provider.spec.type}"))  # fmt: skip
            continue
        env = provider.spec.secret_env
        if env is not None:
            why = check_secret(scheme, os.environ.get(env, "").strip())
            if why is not None:
                source = f"environment variable {env} of CredentialProvider {name!r}"
                problems.append((loc, f"{where}: the secret in {source} does not fit: {why}"))
    return problems


STORED_PREFIX = "stored "


def stored_file(kind: str, name: str) -> str:
    """What issues about a stored object give as its file: ``stored serverworkload/aws-kms``."""
    return f"{STORED_PREFIX}{kind.lower()}/{name}"


def _where(doc: _Document) -> str:
    mark = doc.mark_for(("metadata", "name"))
    return f"{doc.file}:{mark.line + 1}:{mark.column + 1}"


def decode_text(data: bytes, filename: str) -> str:
    """A file's bytes as text; anything but UTF-8 is a :class:`ConfigError` at the line and
    column of the first byte that is not (a UTF-8 byte order mark is allowed and dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        before = data[:start].decode("utf-8-sig")  # (valid up to there)
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        hint = " (UTF-16?)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        message = f"not UTF-8 text: byte 0x{data[start]:02x}{hint}"
        raise ConfigError([ConfigIssue(filename, line, column, "", message)]) from None


@dataclass
class _Loaded:
    """Everything parsed so far, across all files."""

    documents: list[tuple[schema.Document, _Document]] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)
    names: dict[tuple[str, str], str] = field(default_factory=dict)
    incomplete: bool = False  # some objects could not even be identified

    def add_stream(self, text: str, filename: str, *, stored: bool = False) -> None:
        """Parse one multi-document YAML stream."""
        try:
            for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
                if node is None or (isinstance(node, ScalarNode) and node.tag.endswith(":null")):
                    continue  # empty document
                if isinstance(node, MappingNode):
                    self._add_document(filename, node, stored=stored)
                else:
                    self.incomplete = True
                    message = "a document must be a mapping (apiVersion, kind, metadata, spec)"
                    self.issues.append(issue_at(filename, node.start_mark, (), message))
        except (yaml.YAMLError, RecursionError) as exc:
            self.incomplete = True
            self.issues.append(yaml_error_issue(filename, text, exc))

    def add_file(self, path: Path) -> None:
        """Parse one file; failing to read it is an issue too."""
        try:
            text = decode_text(path.read_bytes(), str(path))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.issues.append(issue_at(str(path), None, (), f"cannot read file: {reason}"))
            return
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            return
        self.add_stream(text, str(path))

    def add_stored(self, obj: StoredObject) -> None:
        """An object from the control store, validated again (a file it names may be gone):
        positions are those of ``latchkey get KIND NAME -o yaml``."""
        text = yaml.safe_dump(obj.document(), sort_keys=False, default_flow_style=False)
        self.add_stream(text, stored_file(obj.kind, obj.name), stored=True)

    def _add_document(self, filename: str, node: MappingNode, *, stored: bool = False) -> None:
        try:
            doc = _Document(filename, node, stored=stored)
        except ConfigError as exc:  # the document cannot be read sensibly
            self.issues.extend(exc.issues)
            self.incomplete = True
            return
        self.issues.extend(doc.issues)
        self._register_name(doc)
        try:
            parsed = schema.parse_document(doc.data)
        except ValidationError as exc:
            for error in exc.errors():
                if tuple(error["loc"]) not in doc.bad:
                    self.issues.append(doc.pydantic_issue(error))
            return
        self.documents.append((parsed, doc))

    def _register_name(self, doc: _Document) -> None:
        """Remember (kind, name), even for an invalid document, to find duplicates."""
        data = doc.data if isinstance(doc.data, dict) else {}
        kind, metadata = data.get("kind"), data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if kind not in schema.KINDS or not isinstance(name, str) or not schema.is_name(name):
            self.incomplete = True
            return
        loc: Loc = ("metadata", "name")
        issue = doc.issue(doc.mark_for(loc), loc, f"duplicate {kind} {name!r}")
        first = self.names.get((str(kind), name))
        if first is None:
            self.names[(str(kind), name)] = f"{issue.file}:{issue.line}:{issue.column}"
        else:
            self.issues.append(replace(issue, message=f"{issue.message}, first defined at {first}"))

    def check_references(self) -> None:
        """Cross-object rules: references resolve, host:port pairs are unique."""
        endpoints: dict[tuple[str, int], str] = {}
        # Stored objects first: a clash between a stored object and one being applied is
        # then reported where the user can fix it, in the file being applied.
        for parsed, doc in sorted(self.documents, key=lambda pair: not pair[1].stored):
            if isinstance(parsed, schema.ServerWorkloadDocument):
                key = (parsed.spec.host, parsed.spec.port)
                here = doc.mark_for(("spec", "host"))
                other = endpoints.setdefault(key, parsed.metadata.name)
                if other != parsed.metadata.name:
                    message = f"{key[0]}:{key[1]} is already served by ServerWorkload {other!r}"
                    self.issues.append(doc.issue(here, ("spec", "host"), message))
            # With unidentified objects around, a reference may only *seem* to be missing.
            if not self.incomplete:
                for loc, kind, name in _references(parsed):
                    if (kind, name) not in self.names:
                        message = f"no {kind} named {name!r}"
                        self.issues.append(doc.issue(doc.mark_for(loc), loc, message))
        self.check_schemes()

    def check_schemes(self) -> None:
        """Each policy's credential providers fit its server's authentication scheme."""
        servers = {p.metadata.name: (p, d) for p, d in self.documents
                   if isinstance(p, schema.ServerWorkloadDocument)}  # fmt: skip
        providers_docs = {p.metadata.name: (p, d) for p, d in self.documents
                          if isinstance(p, schema.CredentialProviderDocument)}  # fmt: skip
        providers = {name: p for name, (p, _) in providers_docs.items()}
        changed = {name: doc for name, (_, doc) in providers_docs.items() if not doc.stored}
        for parsed, doc in self.documents:
            if not isinstance(parsed, schema.AccessPolicyDocument):
                continue
            server, server_doc = servers.get(parsed.spec.server, (None, None))
            if server is None or server_doc is None:
                continue  # missing (reported above) or invalid (reported where it is)
            for loc, message in _scheme_problems(parsed.spec, server, providers):
                if doc.stored:  # the policy is as it was: say which applied object broke it
                    causes = [server_doc] if not server_doc.stored else []
                    causes += [changed[n] for n in parsed.spec.providers if n in changed]
                    if causes:
                        where = ", ".join(_where(d) for d in causes)
                        message += f" (after the change at {where})"
                self.issues.append(doc.issue(doc.mark_for(loc), loc, message))

    def build(self) -> model.Config:
        """The final Config, or :class:`ConfigError` with every issue."""
        return self.build_with_objects()[0]

    def objects(self) -> list[StoredObject]:
        """Each valid object's canonical form; :class:`ConfigError` if any issue was found."""
        if self.issues:
            raise ConfigError(self.issues)
        return [
            StoredObject(
                parsed.kind,
                parsed.metadata.name,
                parsed.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            )
            for parsed, _ in self.documents
        ]

    def build_with_objects(self) -> tuple[model.Config, list[StoredObject]]:
        """The Config and each object's canonical form (what the control store keeps)."""
        self.check_references()
        stored = self.objects()
        objects = [parsed.to_domain() for parsed, _ in self.documents]
        config = model.Config(
            server_workloads=tuple(o for o in objects if isinstance(o, model.ServerWorkload)),
            credential_providers=tuple(
                o for o in objects if isinstance(o, model.CredentialProvider)
            ),
            client_workloads=tuple(o for o in objects if isinstance(o, model.ClientWorkload)),
            access_policies=tuple(o for o in objects if isinstance(o, model.AccessPolicy)),
            access_conditions=tuple(o for o in objects if isinstance(o, AccessCondition)),
            trust_providers=tuple(o for o in objects if isinstance(o, model.TrustProvider)),
        )
        return config, stored


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One configuration object in canonical form: its spec as JSON-able data, defaults left
    out, so equal configurations compare equal however they were written."""

    kind: str
    name: str
    spec: dict[str, object]

    def document(self) -> dict[str, object]:
        return {
            "apiVersion": schema.API_VERSION,
            "kind": self.kind,
            "metadata": {"name": self.name},
            "spec": self.spec,
        }


def load_config_text(text: str, filename: str = "<config>") -> model.Config:
    """Load a multi-document YAML stream; ``filename`` only appears in issues."""
    loaded = _Loaded()
    loaded.add_stream(text, filename)
    return loaded.build()


def load_config_file(path: str | os.PathLike[str]) -> model.Config:
    """Load one file; an unreadable file is a :class:`ConfigError` naming it."""
    loaded = _Loaded()
    loaded.add_file(Path(path))
    return loaded.build()


def load_config_paths(paths: Sequence[str | os.PathLike[str]]) -> model.Config:
    """Load and merge several files; a directory means its ``*.yaml``/``*.yml`` files.

    Files of a directory are taken in sorted order, non-recursively, skipping hidden
    files. Names must be unique across everything loaded.
    """
    return load_objects_paths(paths)[0]


def load_objects_paths(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[model.Config, list[StoredObject]]:
    """Like :func:`load_config_paths`, with every object's canonical form."""
    loaded = _Loaded()
    for path in map(Path, paths):
        files = [path]
        if path.is_dir():
            files = sorted(
                p
                for p in path.iterdir()
                if p.suffix in {".yaml", ".yml"} and p.is_file() and not p.name.startswith(".")
            )
        for file in files:
            loaded.add_file(file)
    return loaded.build_with_objects()


def load_objects_text(
    text: str, filename: str = "<config>"
) -> tuple[model.Config, list[StoredObject]]:
    loaded = _Loaded()
    loaded.add_stream(text, filename)
    return loaded.build_with_objects()


def load_stored(objects: Sequence[StoredObject]) -> model.Config:
    """Validate the stored objects together; an issue names the object (``stored
    serverworkload/aws-kms``) at the line and column ``latchkey get ... -o yaml`` shows."""
    loaded = _Loaded()
    for obj in objects:
        loaded.add_stored(obj)
    return loaded.build()


class NoObjects(ValueError):
    """An apply with ``prune`` was given no objects: it would delete everything."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply leads to: the objects given, and the configuration with them in place."""

    desired: list[StoredObject]
    config: model.Config


def load_apply(
    files: Sequence[tuple[str, str]], current: Sequence[StoredObject], *, prune: bool
) -> Applied:
    """Validate ``files`` ((filename, YAML text) pairs) as applied over the ``current``
    stored objects (without them, with ``prune``), in one pass, so that every problem is
    reported at once: each in the file and line where it is, a stored object's (a file it
    names may have gone since) as ``stored KIND/NAME``."""
    loaded = _Loaded()
    for filename, text in files:
        loaded.add_stream(text, filename)
    if prune and not loaded.issues and not loaded.names and not loaded.documents:
        raise NoObjects("no objects passed to apply (with --prune that would delete everything)")
    given = set(loaded.names)  # identifiable objects being applied, valid or not
    if not prune:
        for obj in current:
            if (obj.kind, obj.name) not in given:
                loaded.add_stored(obj)
    config, objects = loaded.build_with_objects()
    stored = {(p.kind, p.metadata.name) for p, d in loaded.documents if d.stored}
    desired = [o for o in objects if (o.kind, o.name) not in stored]
    return Applied(desired, _by_name(config))


def _by_name(config: model.Config) -> model.Config:
    """The objects of each kind in name order, as the stored configuration has them after a
    restart (where the order shows, e.g. which policy is tried first, it does not change)."""

    def name(obj: model.ServerWorkload | model.CredentialProvider | model.ClientWorkload
             | model.AccessPolicy | AccessCondition | model.TrustProvider) -> str:  # fmt: skip
        return obj.name

    return replace(
        config,
        server_workloads=tuple(sorted(config.server_workloads, key=name)),
        credential_providers=tuple(sorted(config.credential_providers, key=name)),
        client_workloads=tuple(sorted(config.client_workloads, key=name)),
        access_policies=tuple(sorted(config.access_policies, key=name)),
        access_conditions=tuple(sorted(config.access_conditions, key=name)),
        trust_providers=tuple(sorted(config.trust_providers, key=name)),
    )
