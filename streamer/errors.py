"""The small error hierarchy every foreign error is translated into at the edges.

The CLI prints ``str(error)`` as one line and exits non-zero; nothing below it prints tracebacks
for these. Messages say what went wrong *and* what to do about it.
"""


class StreamerError(Exception):
    """Base of every error meant for the user; ``str()`` is a one-line, actionable message."""

    exit_code = 1


class ConfigError(StreamerError, ValueError):
    """A bad option, config key or value (the message lists the valid values)."""

    exit_code = 2


class AudioFileError(StreamerError):
    """An audio file that is missing, unreadable or not audio."""


class AudioDeviceError(StreamerError):
    """An input device that does not exist, is busy, or disappeared."""


class ModelLoadError(StreamerError):
    """Model files that are missing, partial, corrupt or have the wrong signature."""


class SinkError(StreamerError):
    """A transcript output that cannot be written (permissions, disk full)."""


class DependencyError(StreamerError):
    """A missing system library or optional package."""
