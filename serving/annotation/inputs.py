"""What the annotation API accepts: label names, shot ids, annotation sources, id ranges.

Each check raises :class:`~serving.http_errors.ApiError` naming the field, so
every router refuses bad input the same way.
"""

from __future__ import annotations

import re

from fastapi import Path

from serving.annotation.context import ServiceContext
from serving.http_errors import ApiError

FEEDS = ("top_positive", "top_negative", "borderline", "random")
# Where an annotation came from: a recommender source, or one of the service's own ways in.
ANNOTATION_SOURCES = (*FEEDS, "search", "import", "example", "review", "undo", "disagreements", "map", "")
# Ids, versions and counts fit a 32-bit signed integer (PostgreSQL's INTEGER); larger ones are refused as 422.
MAX_ID = 2**31 - 1
# Label and user names: 1-100 printable characters, no / or \, no control, format or line-separator characters.
NAME_PATTERN = r"^[^\p{C}\p{Zl}\p{Zp}/\\]+$"
NAME_RULE = "names are 1-100 printable characters without / or \\ and without control characters (NUL, tab, newline)"
LabelName = Path(min_length=1, max_length=100, pattern=NAME_PATTERN, description="Label name")
_BAD_ID_CHARS = re.compile(r"[/\\%\x00-\x1f\x7f]|\.\.")


def check_shot_id(shot_id: str, *, field: str = "shot_id") -> str:
    """Refuse ids that could be read as a path; real ids look like '<video_id>:<start_frame>'."""
    if not shot_id or len(shot_id) > 200 or _BAD_ID_CHARS.search(shot_id) or shot_id.startswith("."):
        raise ApiError(
            400,
            "bad_shot_id",
            f"shot id {shot_id[:80]!r} is not a shot id; shot ids look like '<video_id>:<start_frame>' "
            "and never contain path characters.",
            field=field,
        )
    return shot_id


def check_source(source: str) -> str:
    if source not in ANNOTATION_SOURCES:
        raise ApiError(
            422,
            "invalid",
            f"source {source!r} is not one of {', '.join(s for s in ANNOTATION_SOURCES if s)}.",
            field="source",
        )
    return source


def require_shot(ctx: ServiceContext, shot_id: str, field: str = "shot_id") -> None:
    check_shot_id(shot_id, field=field)
    if not ctx.shots.get_shots([shot_id], columns=["shot_id"]):
        raise ApiError(
            404, "not_found", f"no shot {shot_id!r}; shot ids look like '<video_id>:<start_frame>'.", field=field
        )
