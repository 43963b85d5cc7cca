"""The errors a user acts on (no traceback): each message names the file, the key or the point."""


class ConfigError(ValueError):
    """Bad input: the message names the file, the key and what was expected."""


class RawDataError(ValueError):
    """A raw result file is missing, truncated or corrupt; the message names it."""


class StackError(RuntimeError):
    """The system under test did not start, answer or stop as expected; the message says which part."""


class HostLost(StackError):
    """A machine of the cluster stopped answering or was reclaimed; the message names it."""
