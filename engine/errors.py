"""Errors the engine raises for problems a user can fix.

Each carries one sentence that says what is wrong and what to do; the CLI and
the app show it as it is, without a traceback.
"""


class KeyscribeError(Exception):
    """Base class for errors meant for the user's eyes."""


class AudioError(KeyscribeError):
    """An audio file is missing, empty, corrupt or in a format we cannot read."""


class ModelError(KeyscribeError):
    """A model checkpoint or base weight file is missing, corrupt or mismatched."""


class DeviceError(KeyscribeError):
    """The requested device or precision is not available on this machine."""
