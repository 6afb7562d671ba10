"""Where configuration went wrong: issues with file, line, column and field path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import yaml

Loc = tuple[str | int, ...]
"""A path into a document, as pydantic reports it: ``("spec", "identities", 0)``."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem at a 1-based ``line``/``column``; ``field`` is e.g. ``spec.port``."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(ValueError):
    """Configuration is invalid; ``issues`` holds every problem found."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def issue_at(file: str, mark: yaml.Mark | None, loc: Loc, message: str) -> ConfigIssue:
    """An issue at a (0-based) YAML mark; no mark means the top of the file."""
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return ConfigIssue(file, line, column, format_loc(loc), message)


def yaml_error_issue(file: str, text: str, exc: Exception) -> ConfigIssue:
    """Describe a YAML syntax (or reader) error at the position where it was found."""
    if isinstance(exc, yaml.MarkedYAMLError):
        message, where = exc.problem or "invalid YAML", exc.context_mark
        if exc.context and where:
            message += f" ({exc.context} at line {where.line + 1}, column {where.column + 1})"
        return issue_at(file, exc.problem_mark or where, (), f"YAML syntax error: {message}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return ConfigIssue(file, line, column, "", f"YAML error: {exc.reason}")
    return issue_at(file, None, (), f"YAML error: {exc}")


def format_loc(loc: Loc) -> str:
    """``("spec", "identities", 0, "sourceCidr")`` -> ``spec.identities[0].sourceCidr``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
