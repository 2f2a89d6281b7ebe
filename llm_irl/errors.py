"""Every error a user can cause, in one place at the bottom of the package.

Each is a one-line message naming what is wrong and, where there is one, the file and line;
the CLI turns them into `llm-irl: error: ...` and exit status 2, never a traceback.
"""

from __future__ import annotations


class LlmIrlError(Exception):
    """Base of the errors a user can cause (bad data, recipe, command line, diverging loss)."""


class DataError(LlmIrlError, ValueError):
    """A demonstration that cannot be used, with where it came from."""


class ConfigError(LlmIrlError, ValueError):
    """A recipe or flag that cannot be used; the message names the key."""


class UsageError(LlmIrlError, ValueError):
    """A command-line mistake that isn't about the recipe."""


class NonFiniteLossError(LlmIrlError, RuntimeError):
    """The loss became NaN or inf."""
