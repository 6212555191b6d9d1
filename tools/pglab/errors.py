"""Exception type for every expected lab failure."""


class LabError(RuntimeError):
    """A lab operation failed; the message says what and how to fix it."""
