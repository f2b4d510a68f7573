"""Errors a user can act on. The CLI prints them as one line and exits with code 2, never a traceback."""


class UserError(Exception):
    """Bad input from the user: config, task file, endpoint, archive. Message is one line naming what is wrong."""

    exit_code = 2


class ConfigError(UserError):
    """A config file is missing, malformed, or has a field of the wrong type / unknown name."""


class ArchiveError(UserError):
    """The archive file is corrupt, foreign, from a newer schema, locked by another search, or not writable."""


class SuiteError(UserError):
    """A task suite cannot be loaded (missing file, bad JSONL line, unknown generator)."""


class EndpointError(UserError):
    """The LLM endpoint is down, not OpenAI-compatible, or refuses the API key."""


class BudgetExceeded(Exception):
    """The token or dollar budget is spent. The search turns this into a clean stop, not a failure."""
