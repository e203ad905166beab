"""The library's error types.

Every user mistake (a bad file, an unknown name, a failed download) raises a subclass of
:class:`PneumozooError` whose message is one line naming the thing and the reason, so the
command line can print it without a traceback.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "DownloadError",
    "IntegrityError",
    "InvalidImageError",
    "ModelConfigError",
    "PneumozooError",
    "UnknownNameError",
    "UnsafeModelError",
]


class PneumozooError(Exception):
    """Base class of every error pneumozoo raises on purpose."""


class InvalidImageError(PneumozooError, ValueError):
    """An input could not be read as an X-ray.

    Args:
        source: What was read: a path, or a short description such as ``"<bytes>"``.
        reason: Why it could not be read, in a few words.

    Example:
        >>> str(InvalidImageError("a.jpeg", "empty file"))
        'a.jpeg: empty file'
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class UnknownNameError(PneumozooError, KeyError):
    """A registry lookup (model, preset, pretrained weight, task) failed.

    The message lists the valid names.

    Args:
        kind: What was looked up, e.g. ``"architecture"``.
        name: The name that was asked for.
        valid: The names that exist (sorted in the message).

    Example:
        >>> str(UnknownNameError("architecture", "vgg", ["cnn4", "cnn5"]))
        "unknown architecture 'vgg'; valid: cnn4, cnn5"
    """

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ModelConfigError(PneumozooError, ValueError):
    """An architecture cannot be built as asked (input too small, weights it cannot take)."""


class DataError(PneumozooError, ValueError):
    """A dataset folder or split is unusable (missing class, no images, bad files)."""


class DownloadError(PneumozooError, OSError):
    """A download failed (connection, HTTP status, timeout, truncated body)."""


class IntegrityError(PneumozooError):
    """A file's sha256 does not match the one it was published with."""


class UnsafeModelError(PneumozooError):
    """A model file asks for code execution (Lambda layers, unknown custom objects)."""
