"""The errors dirhook's core raises, each saying whether retrying can help.

An activity turns one of these into an ``ApplicationError`` of the same type name
(``as_application_error``), and the workflows' retry policies read the names of the
non-retryable ones from ``NON_RETRYABLE``: the list is derived from the classes, so a new
error that cannot be fixed by retrying is declared once, here, with ``retryable = False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from temporalio.exceptions import ApplicationError


class DirhookError(Exception):
    """An error with a message fit for an operator (no secret in it)."""

    retryable: ClassVar[bool] = True


class SourceError(DirhookError):
    """A directory source failed."""


class SourceUnavailable(SourceError):
    """The server could not be reached or timed out; worth retrying."""


class SourceAuthError(SourceError):
    """The server refused our credentials; retrying will not help until someone fixes them."""

    retryable = False


class SourceConfigError(SourceError):
    """The configuration points at something that does not exist (base DN, filter…)."""

    retryable = False


class DirectoryNotFound(DirhookError):
    """The directory was deleted while work for it was queued."""

    retryable = False


class MappingError(DirhookError, ValueError):
    """An attribute mapping that cannot be applied (unknown transform or target)."""

    retryable = False


def _non_retryable(cls: type[DirhookError]) -> list[str]:
    names = [] if cls.retryable else [cls.__name__]
    for sub in cls.__subclasses__():
        names += _non_retryable(sub)
    return names


# Sorted so that a workflow's retry policy (recorded in its history) is the same on every worker.
NON_RETRYABLE: list[str] = sorted(_non_retryable(DirhookError))


def as_application_error(exc: DirhookError) -> ApplicationError:
    """What an activity raises for ``exc``: its type name, its message, and whether Temporal retries."""
    # Imported here: the LDAP reader's child process imports these errors, and Temporal's SDK
    # would add its start-up time and memory to every full pass.
    from temporalio.exceptions import ApplicationError

    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable)
