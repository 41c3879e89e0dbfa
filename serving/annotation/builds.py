"""Builds (in the job pool), feeds, classifier versions and publishing, over HTTP."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from serving.annotation.auth import Principal, admin, annotator, viewer
from serving.annotation.context import ServiceContext, context
from serving.annotation.inputs import MAX_ID, LabelName
from serving.annotation.presenters import feed_items, version_out
from serving.model_store import publish as publish_model

router = APIRouter(tags=["builds"])


# --------------------------------------------------------------------------- builds, feeds, versions


def _run_build(ctx: ServiceContext, label: str, who: str, progress: Any) -> dict[str, Any]:
    result = ctx.workspace(label).build(created_by=who, progress=progress)
    out: dict[str, Any] = result.to_dict()
    # One lookup of spans and of the caller's annotations for all four feeds together.
    names = list(result.feeds)
    flat = [item for name in names for item in result.feeds[name]]
    enriched = iter(feed_items(ctx, label, who, flat))
    out["feeds"] = {name: [next(enriched) for _ in result.feeds[name]] for name in names}
    return out


@router.post("/api/labels/{label}/build", responses={202: {"description": "job started (wait=false)"}})
async def build(
    request: Request,
    label: str = LabelName,
    wait: bool = Query(True, description="false: answer 202 with a job id at once"),
    caller: Principal = Depends(annotator),
) -> Any:
    """Train, score the corpus, and return the version, both metrics, the recommendation and the four feeds."""
    ctx = context(request)
    if not wait:  # below the minimum: a 409 saying how many more, not a job id to poll for that
        await run_in_threadpool(ctx.workspace(label).check_ready)
    # Waiting, the build itself raises the same 409, and the annotations are read once, not twice.
    job = ctx.jobs.submit("build", label, caller.name, lambda progress: _run_build(ctx, label, caller.name, progress))
    if not wait:
        return JSONResponse({"job": job.to_dict()}, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})
    result = await ctx.jobs.wait(job)
    return {**result, "job_id": job.id}


@router.get("/api/jobs/{job_id}")
def get_job(request: Request, job_id: str = Path(max_length=64), _caller: Principal = Depends(viewer)) -> Any:
    """A job's state and progress; its result (or error, in the one error shape) once finished."""
    return context(request).jobs.get(job_id).to_dict()


@router.get("/api/jobs")
def list_jobs(request: Request, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    return {"jobs": [{**j.to_dict(), "result": None} for j in context(request).jobs.list()]}


@router.get("/api/labels/{label}/feeds/{feed}")
def feed(
    request: Request,
    feed: Literal["top_positive", "top_negative", "borderline", "random"],
    label: str = LabelName,
    version: int | None = Query(None, ge=1, le=MAX_ID),
    caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """One feed of a saved version (latest by default), with your annotation of each shot."""
    ctx = context(request)
    v = ctx.store.versions.get(label, version)
    items = ctx.workspace(label).feed(feed, version=v.version)
    return {"label": label, "feed": feed, "version": v.version, "items": feed_items(ctx, label, caller.name, items)}


@router.get("/api/labels/{label}/sample")
def sample(
    request: Request,
    label: str = LabelName,
    size: int | None = Query(None, ge=1, le=500, description="Shots to draw; the feed size by default."),
    caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """A random sample of the label's unlabelled shots, before or after a build (no model needed).

    Annotations made from it should carry source ``random``: before the first build the loop
    alternates it with search, and the recommender's ``random-ap`` reward scores those annotations.
    """
    ctx = context(request)
    ctx.store.labels.get(label)
    ids = ctx.workspace(label).sample(size=size)
    items = [{"shot_id": sid, "score": None, "labeled": None} for sid in ids]
    return {"label": label, "source": "random", "items": feed_items(ctx, label, caller.name, items)}


@router.get("/api/labels/{label}/versions")
def versions(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Every classifier version with its metrics, counts and dates, oldest first."""
    return {"versions": [version_out(v) for v in context(request).store.versions.all(label)]}


@router.post("/api/labels/{label}/versions/{n}/publish")
def publish(
    request: Request, n: int = Path(ge=1, le=MAX_ID), label: str = LabelName, _caller: Principal = Depends(admin)
) -> dict[str, Any]:
    """Publish a version: exported to ONNX and registered in the model store the scoring service reads."""
    ctx = context(request)
    ctx.store.versions.get(label, n)
    published = publish_model(label, version=n, settings=ctx.settings)
    return {"label": label, "version": n, "tag": published.tag, "path": published.path or None}
