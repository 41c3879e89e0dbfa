"""A label's annotations out (CSV, Parquet) and in (CSV by shot id or by video and time span)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Request, Response

from annotator_core.workspace import IMPORT_PREFIX, IMPORT_SOURCE, pick_sources
from serving.annotation.auth import Principal, annotator, viewer
from serving.annotation.context import ServiceContext, context
from serving.annotation.inputs import FEEDS, LabelName
from serving.annotation.presenters import model_scores, shot_info, timestamp
from serving.http_errors import ApiError

router = APIRouter(tags=["import and export"])

EXPORT_COLUMNS = [
    "label", "shot_id", "video_id", "title", "start_s", "end_s", "annotator", "value", "source", "picked_from",
    "version", "updated_at", "model_score", "model_version",
]  # fmt: skip
# Where the service picks shots to label. An import keeps a row's picked_from (else its source) when it is one of
# these, as "import:<it>", so a build's quality caveat still knows which labels were a random sample; anything else
# (a relabel in review, an undo, another tool's word, nothing) saves as plain "import": picked who knows how.
PICK_SOURCES = (*FEEDS, "search", "map", "example")
TRUE_WORDS = {"1", "true", "yes", "y", "positive", "pos", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "negative", "neg", "f"}
MAX_REPORTED = 1000
# Cells a spreadsheet reads as a formula (OWASP CSV injection); exported CSV cells never start with one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _export_rows(ctx: ServiceContext, label: str) -> list[dict[str, Any]]:
    rows = ctx.store.annotations.current(label)
    ids = list(dict.fromkeys(r.shot_id for r in rows))
    picked = pick_sources(ctx.store.annotations.events(label))
    version, scores = model_scores(ctx, label, ids)
    info = shot_info(ctx, ids)
    out = []
    for r in rows:
        shot = info.get(r.shot_id, {})
        out.append(
            {
                "label": label,
                "shot_id": r.shot_id,
                "video_id": shot.get("video_id", ""),
                "title": shot.get("title", ""),
                "start_s": shot.get("start_s"),
                "end_s": shot.get("end_s"),
                "annotator": r.annotator,
                "value": bool(r.value),
                "source": r.source,
                "picked_from": picked.get(r.shot_id, r.source),
                "version": r.version,
                "updated_at": timestamp(r.updated_at),
                "model_score": scores.get(r.shot_id),
                "model_version": version,
            }
        )
    return out


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading quote (OWASP)."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def _filename(label: str, ext: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    return f'attachment; filename="{safe}-annotations.{ext}"'


@router.get("/api/labels/{label}/export.csv", response_class=Response)
def export_csv(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> Response:
    """Every current annotation with annotator, time and the latest model's score, as CSV.

    Text cells that a spreadsheet would run as a formula (starting with = + - @ tab or CR) get a
    leading ``'``; the Parquet export keeps every value raw.
    """
    rows = _export_rows(context(request), label)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return Response(buffer.getvalue(), media_type="text/csv", headers={"Content-Disposition": _filename(label, "csv")})


@router.get("/api/labels/{label}/export.parquet", response_class=Response)
def export_parquet(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> Response:
    """The same as export.csv, as Parquet."""
    rows = _export_rows(context(request), label)
    schema = pa.schema(
        [
            ("label", pa.string()), ("shot_id", pa.string()), ("video_id", pa.string()), ("title", pa.string()),
            ("start_s", pa.float64()), ("end_s", pa.float64()), ("annotator", pa.string()), ("value", pa.bool_()),
            ("source", pa.string()), ("picked_from", pa.string()), ("version", pa.int64()),
            ("updated_at", pa.string()),
            ("model_score", pa.float64()), ("model_version", pa.int64()),
        ]
    )  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return Response(
        buffer.getvalue(),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": _filename(label, "parquet")},
    )


def _parse_value(raw: str) -> bool | None:
    word = (raw or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


async def _csv_text(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        for value in form.values():
            if hasattr(value, "read"):
                data = await value.read()
                break
        else:
            raise ApiError(422, "invalid", "the form has no file; attach the CSV as a file field.", field="file")
    else:
        data = await request.body()
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid", "the CSV is not UTF-8 text; save it as UTF-8 CSV.", field="body") from None


def imported_source(row: dict[str, str]) -> str:
    """The source an imported row is saved with: "import:<where it was picked>" when its picked_from (else its
    source) column names a place the service picks shots from, or already says "import:<that>"; else "import"."""
    for column in ("picked_from", "source"):
        word = (row.get(column) or "").strip().lower()
        if word:
            break
    where = word.removeprefix(IMPORT_PREFIX)
    return IMPORT_PREFIX + where if where in PICK_SOURCES else IMPORT_SOURCE


def _match_span(shots: list[dict[str, Any]], start: float, end: float) -> str | None:
    """The shot of a video that overlaps [start, end] most; for a point, the shot holding it."""
    if end <= start:
        return next((s["shot_id"] for s in shots if float(s["start_s"]) <= start < float(s["end_s"])), None)
    best, best_overlap = None, 0.0
    for s in shots:
        overlap = min(end, float(s["end_s"])) - max(start, float(s["start_s"]))
        if overlap > best_overlap:
            best, best_overlap = s["shot_id"], overlap
    return best


def _read_csv(text: str, *, max_field: int) -> tuple[list[str], list[dict[str, str]]]:
    """(lower-cased header, rows) of a CSV; a row the csv module refuses is a 422 naming its line."""
    # The csv module's own default (128 KiB a field) would fail as a 500: the import's body limit bounds it instead.
    csv.field_size_limit(max(max_field, csv.field_size_limit()))
    reader = csv.DictReader(io.StringIO(text), strict=True)  # bad quoting is an error naming its line
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = list(reader)
    except csv.Error as exc:
        line = reader.line_num + 1  # the csv module counts the lines it finished; the error is in the next
        raise ApiError(
            422, "invalid", f"line {line} of the CSV cannot be read ({exc}); fix that line.", field="body", line=line
        ) from None
    return header, rows


def import_rows(ctx: ServiceContext, label: str, who: str, text: str) -> dict[str, Any]:
    """Import one annotator's values from CSV text: every matched row commits in one transaction, or none."""
    header, rows = _read_csv(text, max_field=ctx.settings.max_import_bytes)
    by_shot = {"shot_id", "value"} <= set(header)
    by_span = {"video_id", "start_s", "end_s", "value"} <= set(header)
    if not (by_shot or by_span):
        raise ApiError(
            422,
            "invalid",
            f"the CSV header {header!r} needs the columns shot_id,value or video_id,start_s,end_s,value.",
            field="header",
        )
    if len(rows) > ctx.settings.max_import_rows:
        raise ApiError(
            413,
            "too_large",
            f"{len(rows)} rows is more than VA_MAX_IMPORT_ROWS={ctx.settings.max_import_rows}; split the file.",
            field="body",
        )
    ctx.store.labels.get(label)
    unmatched: list[dict[str, Any]] = []
    wanted: list[tuple[int, dict[str, str], str, bool | None]] = []
    video_shots: dict[str, list[dict[str, Any]]] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        value = _parse_value(row.get("value", ""))
        shot_id = (row.get("shot_id") or "").strip() if by_shot else ""
        if not shot_id and by_span:
            vid = (row.get("video_id") or "").strip()
            try:
                start, end = float(row.get("start_s") or ""), float(row.get("end_s") or "")
            except ValueError:
                unmatched.append({"line": number, "row": row, "reason": "start_s/end_s are not numbers"})
                continue
            if vid not in video_shots:
                video_shots[vid] = ctx.shots.shots_of_video(vid) if vid and "'" not in vid else []
            shot_id = _match_span(video_shots[vid], start, end) or ""
            if not shot_id:
                unmatched.append({"line": number, "row": row, "reason": "no shot of that video covers that span"})
                continue
        wanted.append((number, row, shot_id, value))
    known = {r["shot_id"] for r in ctx.shots.get_shots([w[2] for w in wanted if w[2]], columns=["shot_id"])}
    values: dict[str, bool] = {}
    sources: dict[str, str] = {}
    for number, row, shot_id, value in wanted:
        if value is None:
            unmatched.append({"line": number, "row": row, "reason": "value is not true/false (or 1/0, yes/no)"})
        elif shot_id not in known:
            unmatched.append({"line": number, "row": row, "reason": "no such shot"})
        else:
            values[shot_id] = value  # a shot named twice: the later line wins, as it would row by row
            sources[shot_id] = imported_source(row)
    written = ctx.store.annotations.annotate_many(label, who, values.items(), source=IMPORT_SOURCE, sources=sources)
    return {
        "imported": written.written,
        "unchanged": written.unchanged,
        "sources": dict(Counter(sources.values())),
        "n_unmatched": len(unmatched),
        "unmatched": sorted(unmatched, key=lambda u: u["line"])[:MAX_REPORTED],
    }


@router.post("/api/labels/{label}/import")
async def import_csv(request: Request, label: str = LabelName, caller: Principal = Depends(annotator)) -> Any:
    """Import annotations (as yours) from CSV: shot_id,value or video_id,start_s,end_s,value.

    An optional picked_from (else source) column, as the export writes, keeps where each shot was picked:
    the row saves as import:<that> (import:random, import:search, …), or plain import when it names no feed,
    search, map or example. ``sources`` in the answer counts the matched rows by that source.
    """
    from fastapi.concurrency import run_in_threadpool

    text = await _csv_text(request)
    return await run_in_threadpool(import_rows, context(request), label, caller.name, text)
