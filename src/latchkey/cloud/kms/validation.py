"""KMS request validation from botocore's service model, as AWS's front end does it. Pure.

The model is read once, at import, and compiled into one small validator per operation, so a
request costs a walk over the members it sends. Two kinds of refusal, both 400:

- ``SerializationException`` for a value of the wrong JSON type (the first one found), with
  the wording of AWS's JSON 1.1 deserializer (``NUMBER_VALUE can not be converted to a
  String``, ``Start of list found where not expected``, ...). A blob must be base64.
- ``ValidationException`` for every broken constraint (required, length, range, pattern,
  enum), up to ten, in model order: ``2 validation errors detected: Value 'x' at 'keySpec'
  failed to satisfy constraint: Member must satisfy enum value set: [A, B]; Value null at
  'keyId' failed to satisfy constraint: Member must not be null``. Paths are the lowerCamel
  member names, ``tags.1.member.tagKey`` inside lists.

Values are echoed as AWS echoes them, except blobs (never echoed: ``Value at 'ciphertextBlob'``)
and members botocore marks ``sensitive`` or this module redacts (``REDACTED_MEMBERS``): those
say ``Value at '<path>'`` whatever they hold, so no plaintext, password or token reaches an
error message or the audit trail.

An ``integer`` beyond 32 bits (a ``long`` beyond 64) is a ``SerializationException`` with no
message, as a value that does not parse, before its range is checked.

Unknown members are ignored; a ``null`` member counts as absent and is dropped, as is a ``null``
list item; a decimal where an integer belongs is truncated, the way AWS reads it. These
normalisations are made in place, so handlers see what AWS's handlers would.
"""

from __future__ import annotations

import binascii
import math
import re
from typing import Any

from botocore.loaders import Loader  # type: ignore[import-untyped]
from botocore.model import ServiceModel  # type: ignore[import-untyped]

from latchkey.aws.errors import AwsError

__all__ = [
    "MAX_ECHO",
    "MAX_REPORTED",
    "OPERATION_NAMES",
    "REDACTED_MEMBERS",
    "load_model",
    "validate",
]

#: AWS lists at most this many constraint failures in one message.
MAX_REPORTED = 10

#: Echoed values are cut after this many characters (AWS echoes them whole): a request of
#: megabytes must not make an error message, and its audit event, of megabytes.
MAX_ECHO = 4096

#: Members never echoed though botocore does not mark them sensitive: grant tokens, kept out
#: of error messages like every other token.
REDACTED_MEMBERS = frozenset({"GrantToken", "GrantTokens"})

#: A value beyond its Java type (``integer``: 32-bit ``Integer``, ``long``: 64-bit ``Long``)
#: does not parse: ``SerializationException`` before any range is checked.
_INT_MAX = 2**31
_LONG_MAX = 2**63


class _Invalid(Exception):
    """A SerializationException, raised from deep inside the walk."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _token(value: object) -> str:
    """The JSON token AWS's deserializer names for a value it did not expect."""
    if value is True:
        return "TRUE_VALUE"
    if value is False:
        return "FALSE_VALUE"
    if isinstance(value, str):
        return "STRING_VALUE"
    return "NUMBER_VALUE"


def _not_scalar(value: object, what: str) -> _Invalid:
    if isinstance(value, dict):
        return _Invalid("Start of structure or map found where not expected.")
    if isinstance(value, list):
        return _Invalid("Start of list found where not expected")
    return _Invalid(f"{_token(value)} can not be converted to {what}")


def _render(value: object) -> str:
    """A value as AWS's (Java) front end prints it inside ``Value '...'``."""
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_render(k)}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Errors:
    """Constraint failures, collected across the whole request."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, value: object, redact: bool, constraint: str) -> None:
        if redact:
            shown = "Value at"
        elif value is None:
            shown = "Value null at"
        else:
            text = _render(value)
            if len(text) > MAX_ECHO:
                text = text[:MAX_ECHO] + "..."
            shown = f"Value '{text}' at"
        self.items.append(f"{shown} '{path}' failed to satisfy constraint: {constraint}")


# -- compiled shapes ------------------------------------------------------------------------
# Each node checks one value: ``check(value, path, errors)`` returns the value to keep (the
# same object unless a decimal was truncated), raises _Invalid for a wrong JSON type, and
# records constraint failures in ``errors``. ``redact`` is set on blobs, sensitive members
# and REDACTED_MEMBERS. ``constraints`` lists what AWS prints for a list item or map entry.


class _Node:
    __slots__ = ("redact",)

    def __init__(self, redact: bool) -> None:
        self.redact = redact

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        raise NotImplementedError

    def constraints(self) -> list[str]:
        return []

    def trail(self, value: Any) -> Any:
        """``value`` (already checked) as CloudTrail records it: structure members in lower
        camel case (``keyId``), map keys (an encryption context's) as they are."""
        return value


def _min_length(n: int) -> str:
    return f"Member must have length greater than or equal to {n}"


def _max_length(n: int) -> str:
    return f"Member must have length less than or equal to {n}"


def _min_value(n: int) -> str:
    return f"Member must have value greater than or equal to {n}"


def _max_value(n: int) -> str:
    return f"Member must have value less than or equal to {n}"


def _length_text(low: int | None, high: int | None) -> list[str]:
    """A length constraint as AWS lists it for a list item or map entry (max first)."""
    out = []
    if high is not None:
        out.append(_max_length(high))
    if low is not None:
        out.append(_min_length(low))
    return out


class _String(_Node):
    __slots__ = ("enum", "enum_text", "high", "low", "pattern", "pattern_text")

    def __init__(self, shape: Any, redact: bool) -> None:
        super().__init__(redact)
        meta = shape.metadata
        self.low: int | None = meta.get("min")
        self.high: int | None = meta.get("max")
        self.pattern_text: str | None = meta.get("pattern")
        # Java's regex flavour: \d, \w, \s are ASCII; the whole value must match.
        self.pattern = re.compile(self.pattern_text, re.ASCII) if self.pattern_text else None
        enum = shape.enum
        self.enum = frozenset(enum) if enum else None
        self.enum_text = f"[{', '.join(enum)}]" if enum else ""

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if not isinstance(value, str):
            raise _not_scalar(value, "a String")
        redact = self.redact
        if self.enum is not None and value not in self.enum:
            errors.add(path, value, redact, f"Member must satisfy enum value set: {self.enum_text}")
        n = len(value)
        if self.low is not None and n < self.low:
            errors.add(path, value, redact, _min_length(self.low))
        if self.high is not None and n > self.high:
            errors.add(path, value, redact, _max_length(self.high))
        if self.pattern is not None and self.pattern.fullmatch(value) is None:
            pattern = f"Member must satisfy regular expression pattern: {self.pattern_text}"
            errors.add(path, value, redact, pattern)
        return value

    def constraints(self) -> list[str]:
        out = []
        if self.enum is not None:
            out.append(f"Member must satisfy enum value set: {self.enum_text}")
        out += _length_text(self.low, self.high)
        if self.pattern_text is not None:
            out.append(f"Member must satisfy regular expression pattern: {self.pattern_text}")
        return out


def _blob_length(value: str, path: str) -> int:
    """The decoded length of a base64 string; _Invalid when it is not strict base64."""
    if len(value) % 4:
        raise _Invalid(
            f"Value at '{path}' can not be converted to a Blob: Base64 encoded length is "
            f"expected a multiple of 4 bytes but found: {len(value)}"
        )
    try:
        return len(binascii.a2b_base64(value, strict_mode=True))
    except (binascii.Error, ValueError):
        raise _Invalid(
            f"Value at '{path}' can not be converted to a Blob: Invalid Base64 character"
        ) from None


class _Blob(_Node):
    __slots__ = ("high", "low")

    def __init__(self, shape: Any) -> None:
        super().__init__(True)  # blobs are never echoed
        self.low: int | None = shape.metadata.get("min")
        self.high: int | None = shape.metadata.get("max")

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if not isinstance(value, str):
            raise _not_scalar(value, "a Blob")
        if self.low is None and self.high is None:
            _blob_length(value, path)
            return value
        n = _blob_length(value, path)
        if self.low is not None and n < self.low:
            errors.add(path, value, True, _min_length(self.low))
        if self.high is not None and n > self.high:
            errors.add(path, value, True, _max_length(self.high))
        return value

    def constraints(self) -> list[str]:
        return _length_text(self.low, self.high)


class _Integer(_Node):
    """An ``integer`` or ``long`` shape; ``bound`` is its Java type's (``-bound <= v < bound``)."""

    __slots__ = ("bound", "high", "low")

    def __init__(self, shape: Any, redact: bool) -> None:
        super().__init__(redact)
        self.low: int | None = shape.metadata.get("min")
        self.high: int | None = shape.metadata.get("max")
        self.bound = _LONG_MAX if shape.type_name == "long" else _INT_MAX

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _not_scalar(value, "an Integer")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _Invalid("")
            value = int(value)  # AWS reads 1.5 as 1
        if not -self.bound <= value < self.bound:
            raise _Invalid("")  # beyond a Java int (long): AWS says nothing more
        if self.low is not None and value < self.low:
            errors.add(path, value, self.redact, _min_value(self.low))
        if self.high is not None and value > self.high:
            errors.add(path, value, self.redact, _max_value(self.high))
        return value

    def constraints(self) -> list[str]:
        out = []
        if self.high is not None:
            out.append(_max_value(self.high))
        if self.low is not None:
            out.append(_min_value(self.low))
        return out


class _Boolean(_Node):
    __slots__ = ()

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if not isinstance(value, bool):
            raise _not_scalar(value, "a Boolean")
        return value


class _Timestamp(_Node):
    """JSON 1.1 timestamps are epoch seconds."""

    __slots__ = ()

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _not_scalar(value, "a Timestamp")
        if not math.isfinite(value):
            raise _Invalid("")
        return value


class _List(_Node):
    __slots__ = ("high", "item", "low")

    def __init__(self, shape: Any, item: _Node, redact: bool) -> None:
        super().__init__(redact)
        self.item = item
        self.low: int | None = shape.metadata.get("min")
        self.high: int | None = shape.metadata.get("max")

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if not isinstance(value, list):
            if isinstance(value, dict):
                raise _Invalid("Start of structure or map found where not expected.")
            raise _Invalid("Expected list or null")
        if None in value:  # AWS drops a null item
            value[:] = [v for v in value if v is not None]
        item = self.item
        if isinstance(item, _Struct | _List | _Map):  # nested: errors name the item
            for i, v in enumerate(value):
                kept = item.check(v, f"{path}.{i + 1}.member", errors)
                if kept is not v:
                    value[i] = kept
        else:  # scalars: one error for the list, listing what an item must satisfy
            sub = _Errors()
            for i, v in enumerate(value):
                kept = item.check(v, path, sub)
                if kept is not v:
                    value[i] = kept
            if sub.items:
                each = f"Member must satisfy constraint: [{', '.join(item.constraints())}]"
                errors.add(path, value, self.redact or item.redact, each)
        n = len(value)
        if self.low is not None and n < self.low:
            errors.add(path, value, self.redact or item.redact, _min_length(self.low))
        if self.high is not None and n > self.high:
            errors.add(path, value, self.redact or item.redact, _max_length(self.high))
        return value

    def trail(self, value: Any) -> Any:
        return [self.item.trail(v) for v in value] if isinstance(value, list) else value


class _Map(_Node):
    __slots__ = ("high", "key", "low", "value")

    def __init__(self, shape: Any, key: _Node, value: _Node, redact: bool) -> None:
        super().__init__(redact)
        self.key = key
        self.value = value
        self.low: int | None = shape.metadata.get("min")
        self.high: int | None = shape.metadata.get("max")

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if not isinstance(value, dict):
            if isinstance(value, list):
                raise _Invalid("Start of list found where not expected")
            raise _Invalid("Expected map or null")
        for k in [k for k, v in value.items() if v is None]:
            del value[k]  # a null entry is no entry
        keys, values = _Errors(), _Errors()
        for k, v in value.items():
            self.key.check(k, path, keys)
            kept = self.value.check(v, path, values)
            if kept is not v:
                value[k] = kept
        redact = self.redact or self.key.redact or self.value.redact
        if keys.items:
            each = f"Map keys must satisfy constraint: [{', '.join(self.key.constraints())}]"
            errors.add(path, value, redact, each)
        if values.items:
            each = f"Map value must satisfy constraint: [{', '.join(self.value.constraints())}]"
            errors.add(path, value, redact, each)
        n = len(value)
        if self.low is not None and n < self.low:
            errors.add(path, value, redact, _min_length(self.low))
        if self.high is not None and n > self.high:
            errors.add(path, value, redact, _max_length(self.high))
        return value

    def trail(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: self.value.trail(v) for k, v in value.items()}


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


class _Struct(_Node):
    __slots__ = ("members",)

    def __init__(self, redact: bool) -> None:
        super().__init__(redact)
        # (wire name, path name, required, node, redact-when-null), in model order
        self.members: tuple[tuple[str, str, bool, _Node, bool], ...] = ()

    def check(self, value: Any, path: str, errors: _Errors) -> Any:
        if not isinstance(value, dict):
            if isinstance(value, list):
                raise _Invalid("Start of list found where not expected")
            raise _Invalid("Expected null")
        prefix = f"{path}." if path else ""
        for wire, name, required, node, redact in self.members:
            v = value.get(wire)
            if v is None:
                if wire in value:
                    del value[wire]  # null is absent
                if required:
                    errors.add(prefix + name, None, redact, "Member must not be null")
                continue
            kept = node.check(v, prefix + name, errors)
            if kept is not v:
                value[wire] = kept
        return value

    def trail(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        names = {wire: (name, node) for wire, name, _, node, _ in self.members}
        out = {}
        for wire, v in value.items():
            name, node = names.get(wire, (_lower_camel(wire), _Node(False)))
            out[name] = node.trail(v)
        return out


# -- compiling the model ----------------------------------------------------------------------


def _compile(shape: Any, redact: bool, structs: dict[str, _Struct]) -> _Node:
    redact = redact or bool(shape.metadata.get("sensitive"))
    kind = shape.type_name
    if kind == "structure":
        key = f"{shape.name}/{redact}"
        if key in structs:  # shared (or recursive) structures compile once
            return structs[key]
        node = _Struct(redact)
        structs[key] = node
        required = set(shape.required_members)
        members = []
        for wire, member in shape.members.items():
            hidden = redact or wire in REDACTED_MEMBERS
            child = _compile(member, hidden, structs)
            # A missing blob is "Value null" unless it is sensitive in its own right.
            null_redact = hidden or bool(member.metadata.get("sensitive"))
            members.append((wire, _lower_camel(wire), wire in required, child, null_redact))
        node.members = tuple(members)
        return node
    if kind == "list":
        return _List(shape, _compile(shape.member, redact, structs), redact)
    if kind == "map":
        return _Map(
            shape,
            _compile(shape.key, redact, structs),
            _compile(shape.value, redact, structs),
            redact,
        )
    if kind == "string":
        return _String(shape, redact)
    if kind == "blob":
        return _Blob(shape)
    if kind in ("integer", "long"):
        return _Integer(shape, redact)
    if kind == "boolean":
        return _Boolean(redact)
    if kind == "timestamp":
        return _Timestamp(redact)
    raise ValueError(f"KMS model shape {shape.name} has an unknown type {kind}")


def load_model() -> Any:
    """botocore's KMS model, from botocore's own data only (``~/.aws/models`` and
    ``AWS_DATA_PATH`` cannot change what the local cloud accepts); the same model
    ``botocore.session.get_session().get_service_model("kms")`` gives, without importing
    botocore's client machinery."""
    loader = Loader(
        extra_search_paths=[Loader.BUILTIN_DATA_PATH], include_default_search_paths=False
    )
    return ServiceModel(loader.load_service_model("kms", "service-2"), "kms")


def _load() -> tuple[tuple[str, ...], dict[str, _Struct]]:
    model = load_model()
    structs: dict[str, _Struct] = {}
    validators: dict[str, _Struct] = {}
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        if shape is not None:
            node = _compile(shape, False, structs)
            assert isinstance(node, _Struct)
            validators[name] = node
    return tuple(model.operation_names), validators


#: Every operation in botocore's KMS model (the API the local cloud answers for).
OPERATION_NAMES, _VALIDATORS = _load()


def _message(items: list[str]) -> str:
    shown = items[:MAX_REPORTED]
    n = len(shown)
    noun = "error" if n == 1 else "errors"
    return f"{n} validation {noun} detected: {'; '.join(shown)}"


# Members CloudTrail records with their default when the request left them out (KMS Developer
# Guide, "Decrypt" / "Encrypt" / "ReEncrypt" CloudTrail examples: the algorithm is always there).
_TRAIL_DEFAULTS: dict[str, dict[str, str]] = {
    "Encrypt": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
    "Decrypt": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
    "ReEncrypt": {
        "sourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "destinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    },
}


def trail_parameters(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """A call's (checked, allow-listed) parameters named as CloudTrail names them, with the
    defaults CloudTrail shows for members the request left out."""
    validator = _VALIDATORS.get(operation)
    if validator is None:
        return {_lower_camel(k): v for k, v in params.items()}
    result = validator.trail(params)
    assert isinstance(result, dict)
    defaults = _TRAIL_DEFAULTS.get(operation)
    return {**defaults, **result} if defaults else result


def validate(operation: str, params: dict[str, Any]) -> None:
    """Check ``params`` (a decoded JSON body) against ``operation``'s input shape.

    Raises ``SerializationException`` or ``ValidationException`` (400) as AWS would; drops
    ``null`` members and truncates decimals in place. An operation the model does not know
    is not checked here (routing refuses it).
    """
    validator = _VALIDATORS.get(operation)
    if validator is None:
        return
    errors = _Errors()
    try:
        validator.check(params, "", errors)
    except _Invalid as exc:
        raise AwsError("SerializationException", exc.message) from None
    if errors.items:
        raise AwsError("ValidationException", _message(errors.items))
