"""The errors a user can fix, and how any exception is told in one line.

This module is the bottom of the house: every other module may import it and
it imports nothing of the package. The command layer turns a ``UsageError``
(and its ``ResultsError`` kind) into one line on stderr and exit status 2.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class ResultsError(UsageError, ValueError):
    """A results file that cannot be used; the message names the file and the problem."""


class NotAvailable(Exception):
    """A route that cannot apply to this backend (autodiff through a kernel with no graph):
    the unit is not available, with the reason, never the backend's failure."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message, or its type's name."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def describe_exception(exc: BaseException) -> str:
    """The exception as the last line of its traceback would show it, on one line.

    That is its type and the first line of its message: libraries put the
    summary first and hints after (torch: "Set TORCHDYNAMO_VERBOSE=1 ...").
    """
    text = first_line(exc)
    return type(exc).__name__ if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"
