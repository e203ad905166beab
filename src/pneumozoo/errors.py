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
    "InvalidRevisionError",
    "ModelConfigError",
    "ModelMetadataError",
    "OutOfDomainError",
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


class ModelMetadataError(ModelConfigError):
    """A model file (``pneumozoo.json``, ``config.json``...) declares something invalid.

    The message is one line naming the file, the field and the rule it breaks.

    Args:
        file: The file, as a path or a name (``".../pneumozoo.json"``).
        field: The field, e.g. ``"threshold"`` or ``"files['config.json']"``; ``""`` when
            the whole file is unusable (not JSON, too large...).
        reason: The rule it breaks, in a few words.

    Example:
        >>> str(ModelMetadataError("m/pneumozoo.json", "threshold", "must be in [0, 1], got 7"))
        "m/pneumozoo.json: field 'threshold' must be in [0, 1], got 7"
    """

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        where = f"{file}: field {field!r}" if field else f"{file}:"
        super().__init__(f"{where} {reason}")


class InvalidRevisionError(PneumozooError, ValueError):
    """A Hub revision is neither a valid git ref name nor a 40-hex commit hash."""


class OutOfDomainError(PneumozooError):
    """A film the model's domain guard flags, with ``on_out_of_domain="fail"``.

    Args:
        source: The film: a path, or a short description of an in-memory input.
        score: Its domain score (the guard's distance over its cut-off; above 1.0 is out
            of domain).
        colour: The film is a colour picture (out of domain whatever its score).

    Example:
        >>> print(OutOfDomainError("adult.png", 2.5))
        adult.png: out of the model's domain (domain score 2.50 > 1.00); its prediction is not to be trusted
        >>> print(OutOfDomainError("photo.jpg", 0.4, colour=True))
        photo.jpg: out of the model's domain (a colour picture, not a radiograph); its prediction is not to be trusted
    """

    def __init__(self, source: str, score: float | None, *, colour: bool = False) -> None:
        self.source = source
        self.score = score
        self.colour = colour
        why = ("a colour picture, not a radiograph" if colour
               else f"domain score {(score or 0.0):.2f} > 1.00")
        super().__init__(f"{source}: out of the model's domain ({why}); its prediction is not "
                         "to be trusted")
