"""Exception types for errors a user can cause.

Every message says what went wrong *and* what to do about it, because the same text is
shown in the GUI's message box, printed as the CLI's one-line error, and raised to
Python scripts. Types subclass the builtin a script would naturally catch (``ValueError``
for bad arguments, ``FileNotFoundError`` for missing sources) so existing ImageryClient
scripts that catch those keep working.
"""

from __future__ import annotations


class ImageryGuiError(Exception):
    """Base class of every error imagery-gui raises on purpose."""


class SourceError(ImageryGuiError):
    """A data source cannot be opened or read."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """The path or URL does not exist (no such folder, no ``info`` file, HTTP 404)."""


class NotPrecomputedError(SourceError, ValueError):
    """The path exists but is not a Neuroglancer Precomputed (or graphene) volume layer."""


class InfoUnreadableError(SourceError, ValueError):
    """The layer's ``info`` file exists but cannot be parsed or lacks required fields."""


class UnsupportedSourceError(SourceError, ValueError):
    """The URL uses a scheme or format imagery-gui does not read."""


class SourceUnavailableError(SourceError, ConnectionError):
    """A remote source did not answer (network error, timeout, repeated server errors)."""


class SourceTimeoutError(SourceUnavailableError, TimeoutError):
    """A read took longer than the fetch timeout the user set."""


class AuthenticationError(SourceError, PermissionError):
    """A token is missing or was rejected."""


class DataCorruptError(SourceError, ValueError):
    """A chunk could not be decoded, or holds data of the wrong type or size."""


class BoundsError(ImageryGuiError, ValueError):
    """Bounds of the wrong shape, non-numeric, or of zero / negative size."""


class OutOfBoundsError(BoundsError):
    """The requested region lies entirely outside the volume."""


class MipError(ImageryGuiError, ValueError):
    """A mip level (or resolution) that the layer does not have."""


class ResolutionError(ImageryGuiError, ValueError):
    """A resolution that is neither 'image', 'segmentation' nor three positive numbers."""


class RootIdError(ImageryGuiError, ValueError):
    """A root id that is not a non-negative 64-bit integer."""


class ExportError(ImageryGuiError, OSError):
    """A figure or file cannot be written (unwritable path, exists without --force)."""


class OutputExistsError(ExportError, FileExistsError):
    """The target file exists and replacing it was not asked for.

    ``existing_path`` lets each front end say how to replace it in its own terms (the
    command line's ``--force``, the Python API's ``force=True`` / ``overwrite=True``).
    """

    def __init__(self, message: str, existing_path: str) -> None:
        super().__init__(message)
        self.existing_path = existing_path


class ImageryGuiWarning(UserWarning):
    """Something the user asked for was partly done (the command line prints it as one line)."""


class IdWarning(ImageryGuiWarning):
    """Ids that were given but not used: rejected tokens, or ids absent from a figure."""
