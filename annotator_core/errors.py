"""The package's own exceptions. Every message names the bad value, what was expected, and the fix."""

from __future__ import annotations


class VAError(Exception):
    """Base class of every error Video Annotator raises on purpose."""

    #: HTTP status an adapter should answer with when this error reaches a client.
    status_code = 400
    #: Stable machine-readable code for the one JSON error shape.
    code = "bad_request"


class ConfigError(VAError):
    """A setting is unknown, invalid, or points at something unusable."""

    code = "bad_config"


class NotFoundError(VAError):
    status_code = 404
    code = "not_found"


class ConflictError(VAError):
    """Someone else changed the record since the caller read it."""

    status_code = 409
    code = "conflict"


class ValidationFailed(VAError):
    status_code = 422
    code = "invalid"


class NotEnoughAnnotations(VAError):
    """A build was asked for before the minimum of positives and negatives."""

    status_code = 409
    code = "not_enough_annotations"

    def __init__(self, message: str, *, need_positive: int, need_negative: int) -> None:
        super().__init__(message)
        self.need_positive = need_positive
        self.need_negative = need_negative


class DimensionMismatch(ValidationFailed):
    code = "dimension_mismatch"


class EncoderUnavailable(VAError):
    """An encoder cannot be loaded here (no weights offline, unknown spec)."""

    code = "encoder_unavailable"


class StoreUnavailable(VAError):
    """A store cannot be reached (database URL, LanceDB URI)."""

    status_code = 503
    code = "store_unavailable"


def first_line(exc: BaseException, *, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (native libraries append pages of context)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__


# How a failed videos row's error starts when the machine, not the file, was at fault (a ConfigError: ffmpeg not
# installed): such a title is tried again on the next ingest run, without --retry-failed.
SETUP_FAILURE = "setup: "
