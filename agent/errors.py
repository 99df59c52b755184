"""Errors that end a run, each tied to the exit code the public contract gives it."""

from __future__ import annotations

EXIT_RESOLVED = 0
EXIT_UNRESOLVED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130


class AgentError(Exception):
    """A run cannot go on; `str()` is the one-line message the user sees."""

    exit_code = EXIT_ENVIRONMENT


class BadInput(AgentError):
    """No such repo or test, a bad option: the user can fix it (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class EnvironmentProblem(AgentError):
    """Docker, endpoint or auth unusable (exit 3)."""

    exit_code = EXIT_ENVIRONMENT
