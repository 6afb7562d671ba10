"""AWS errors as values: the code verbatim, the HTTP status, the message.

Each wire protocol has one renderer (``jsonproto.encode_error``, ``queryproto.encode_error``);
handlers raise ``AwsError`` and never format error bodies themselves.
"""

from __future__ import annotations


class AwsError(Exception):
    """An error the client is meant to see, with AWS's code and status."""

    def __init__(self, code: str, message: str, status: int = 400, *, sender: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender  # query protocol <Type>Sender</Type> vs Receiver

    def __repr__(self) -> str:
        return f"AwsError({self.code!r}, {self.message!r}, {self.status})"


def validation_error(field: str, value: object, constraint: str) -> AwsError:
    """AWS's ValidationException wording for a single failed constraint."""
    shown = "null" if value is None else f"'{value}'"  # AWS quotes every value, even numbers
    return AwsError(
        "ValidationException",
        f"1 validation error detected: Value {shown} at '{field}' failed to satisfy "
        f"constraint: {constraint}",
    )


def internal_error(service_code: str = "InternalFailure") -> AwsError:
    """A 500 with no detail; the traceback goes to the log, never to the client."""
    return AwsError(
        service_code, "We encountered an internal error. Please try again.", 500, sender=False
    )
