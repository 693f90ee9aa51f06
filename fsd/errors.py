"""Exceptions that carry a message meant for a person; the CLI prints them without a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class FsdError(Exception):
    """Base class of every user-facing error of the project.

    ``code`` is a stable machine-readable identifier (used by the server's JSON errors);
    ``str(error)`` is a sentence a person understands.
    """

    code: str = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(FsdError):
    """A configuration file or value is invalid; the message names the key."""

    code = "invalid_config"


class DataError(FsdError):
    """A data set is missing, malformed or empty."""

    code = "invalid_data"


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem of a pydantic validation, each naming its key (``source: a.b: msg``)."""
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)
