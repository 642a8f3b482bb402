"""One error tree for the whole project.

`ProtocolError` means the *remote* side sent something bad (a corrupt frame, a malformed
payload); `UsageError` means *we* were called wrongly (a bad config, a bad argument).
Callers catch the branch they can handle; only the API layer turns errors into HTTP codes.
"""


class LedwatchError(Exception):
    """Root of every error LEDwatch raises on purpose."""


class UsageError(LedwatchError):
    """Local misuse: bad configuration, bad argument, call out of order."""


class ConfigError(UsageError):
    """A configuration file or value is invalid; the message names the key."""


class ProtocolError(LedwatchError):
    """The peer sent bytes or a payload that break the protocol."""


class PayloadError(ProtocolError):
    """An MQTT payload is not a valid `ledwatch.telemetry/1` document."""
