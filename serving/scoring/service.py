"""The scoring service: every published label's probability for embeddings, shot ids or a clip.

Run it with ``va serve-scoring`` (or ``bentoml serve serving.scoring.service:Scoring``
with ``BENTOML_HOME`` set to the model store). Routes:

- ``POST /v1/score/embeddings``: JSON ``{"vectors": [[...]], "labels"?: [...], "encoder"?: "..."}``
- ``POST /v1/score/embeddings/binary``: raw little-endian float32 rows (``application/octet-stream``)
  or an Arrow IPC stream (``application/vnd.apache.arrow.stream``); answers in the same format,
  the label order in the ``X-VA-Labels`` header; ``?labels=a,b`` and ``?encoder=`` as query parameters
- ``POST /v1/score/shots``: ``{"shot_ids": [...], "labels"?: [...]}`` (vectors from LanceDB)
- ``POST /v1/score/clip``: multipart ``clip`` file (``labels`` optional) -> per-shot and whole-clip scores
- ``POST /v1/labels``: the labels and model versions being served
- ``POST /v1/query/shots`` and ``GET /v1/videos/{video_id}/timeline``: the catalog's shots for labels, read
  from the ``scores`` table (serving/scoring/query.py)
- BentoML's own ``/livez``, ``/readyz`` (ready once every published label's model is loaded) and ``/metrics``

A background task checks the model store every ``VA_SCORING_RELOAD_S`` seconds
and swaps in newly published models without a restart.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import bentoml
import numpy as np
from bentoml.validators import ContentType
from pydantic import Strict
from starlette.responses import Response

from annotator_core.errors import EncoderUnavailable, VAError
from annotator_core.settings import Settings, load_settings
from serving.http_errors import ApiError, error_response
from serving.limits import BodyLimit, Limit
from serving.scoring.middleware import ClipUpload, ErrorShape, LoadShedding, install_client_error_log
from serving.scoring.models import ModelGroup, ModelRegistry, ServingSet
from serving.scoring.query import QueryRoutes, json_bytes
from serving.scoring.requests import (
    ARROW_STREAM,
    RAW_FLOAT32,
    arrow_scores,
    check_shot_ids,
    matrix_from_body,
    matrix_from_lists,
)

log = logging.getLogger("va.scoring")
# A vector value is a JSON number: "0.5" and true are refused (pydantic's lax mode would take them).
StrictNumber = Annotated[float, Strict()]

# Batches above this many vectors are scored off the event loop so probes never wait on them.
INLINE_MAX_VECTORS = 256
JSON = "application/json"
CLIP_ROUTE = "/v1/score/clip"
SCORING_ROUTES = ("/v1/score/embeddings", "/v1/score/embeddings/binary", "/v1/score/shots", CLIP_ROUTE)


def _json(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    # orjson (json_bytes): the score matrices of a batch are most of an answer, and json.dumps is slow at them.
    return Response(json_bytes(payload), status_code=status_code, media_type=JSON, headers=headers)


def _error(exc: VAError) -> Response:
    return error_response(exc)


def _rounded(scores: np.ndarray) -> list[list[float]]:
    # float32 carries 7 significant digits; more digits in JSON are noise that costs bytes.
    rows: list[list[float]] = scores.astype(np.float64).round(7).tolist()
    return rows


class ScoringService:
    """The routes; :func:`create_service` makes the BentoML service of one settings object."""

    def __init__(self, settings: Settings) -> None:
        install_client_error_log()
        self.settings = settings
        self.registry = ModelRegistry(settings)
        try:
            self.registry.refresh()
        except Exception:  # a store that cannot be read must leave the service up and not ready
            log.exception("the model store at %s cannot be read", self.registry.root)
        self._encoders: dict[str, Any] = {}
        self._shots: Any = None
        self._watcher: asyncio.Task[None] | None = None
        # What is loaded now lives as long as the worker: keep it out of every later GC pass (p99 pauses).
        gc.collect()
        gc.freeze()

    # -- lifecycle -------------------------------------------------------------

    @bentoml.on_startup
    async def watch_model_store(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.scoring_reload_s)
            try:
                await anyio.to_thread.run_sync(self.registry.refresh)
            except Exception:
                log.exception("reloading models from %s failed; still serving the previous set", self.registry.root)

    @bentoml.on_shutdown
    async def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    def __is_ready__(self) -> bool:
        return self.registry.current.ready

    # -- routes ----------------------------------------------------------------

    @bentoml.api(route="/v1/score/embeddings")
    async def score_embeddings(
        self, vectors: list[list[StrictNumber]], labels: list[str] | None = None, encoder: str | None = None
    ) -> dict[str, Any]:
        """Every label's P(positive) for each vector (JSON in, JSON out)."""
        try:
            served = self.registry.current
            group, names = served.select(labels, encoder)
            x = matrix_from_lists(vectors, dim=group.dim, max_vectors=self.settings.scoring_max_vectors)
            scores = await self._scores(group, names, x)
        except VAError as exc:
            return _error(exc)  # type: ignore[return-value]
        return _json(_described(served, group, names) | {"scores": _rounded(scores)})  # type: ignore[return-value]

    @bentoml.api(route="/v1/score/embeddings/binary")
    async def score_embeddings_binary(
        self, body: Annotated[bytes, ContentType(RAW_FLOAT32)], /, ctx: bentoml.Context
    ) -> bytes:
        """Raw float32 rows or an Arrow IPC stream in; the same format out (label order in X-VA-Labels)."""
        request = ctx.request
        content_type = request.headers.get("content-type", RAW_FLOAT32).split(";")[0].strip().lower()
        try:
            served = self.registry.current
            wanted = [s for s in request.query_params.get("labels", "").split(",") if s] or None
            group, names = served.select(wanted, request.query_params.get("encoder") or None)
            # BentoML hands an empty body over as b"{}"; the header tells the two apart.
            raw = b"" if request.headers.get("content-length") == "0" else body
            x = matrix_from_body(raw, content_type, dim=group.dim, max_vectors=self.settings.scoring_max_vectors)
            scores = await self._scores(group, names, x)
        except VAError as exc:
            ctx.response.status_code = int(exc.status_code)  # BentoML sets the status from ctx on this route
            return _error(exc)  # type: ignore[return-value]
        headers = {
            "X-VA-Labels": json.dumps(names),
            "X-VA-Versions": json.dumps([served.models[n].version for n in names]),
            "X-VA-Encoder": group.encoder,
        }
        if content_type == ARROW_STREAM:
            return Response(arrow_scores(names, scores), media_type=ARROW_STREAM, headers=headers)  # type: ignore[return-value]
        return Response(scores.astype("<f4").tobytes(), media_type=RAW_FLOAT32, headers=headers)  # type: ignore[return-value]

    @bentoml.api(route="/v1/score/shots")
    def score_shots(self, shot_ids: list[str], labels: list[str] | None = None) -> dict[str, Any]:
        """Every label's P(positive) for ingested shots, by id (vectors read from LanceDB)."""
        try:
            served = self.registry.current
            ids = check_shot_ids(shot_ids, max_items=self.settings.scoring_max_vectors)
            rows = self._shot_store().get_shots(ids, columns=["shot_id", "vector", "encoder"])
            found = {r["shot_id"]: r for r in rows}
            missing = [i for i, sid in enumerate(ids) if sid not in found]
            if missing:
                raise ApiError(
                    404,
                    "not_found",
                    f"shot_ids[{missing[0]}] = {ids[missing[0]]!r} is not an ingested shot "
                    f"({len(missing)} of {len(ids)} ids unknown); list shots with `va search`.",
                    field=f"shot_ids[{missing[0]}]",
                    expected="the id of an ingested shot ('<video_id>:<start_frame>')",
                )
            shot_encoder = str(found[ids[0]]["encoder"])
            group, names = served.select(labels, None if labels else shot_encoder)
            if shot_encoder != group.encoder:
                raise ApiError(
                    422,
                    "encoder_mismatch",
                    f"the shots were embedded with {shot_encoder!r} but labels {names} were trained on "
                    f"{group.encoder!r} embeddings; publish labels built on {shot_encoder!r}.",
                    field="labels",
                    expected=f"labels trained on {shot_encoder!r}",
                )
            x = np.asarray([found[sid]["vector"] for sid in ids], dtype=np.float32)
            scores = _columns(group, names, group.scores(x))
        except VAError as exc:
            return _error(exc)  # type: ignore[return-value]
        return _json(  # type: ignore[return-value]
            _described(served, group, names) | {"shot_ids": ids, "scores": _rounded(scores)}
        )

    @bentoml.api(route="/v1/score/clip")
    def score_clip(self, clip: Path, labels: list[str] | None = None) -> dict[str, Any]:
        """A clip's shots (PySceneDetect, as ingest) scored for every label, and the whole clip."""
        from serving.scoring.clips import embed_clip

        try:
            served = self.registry.current
            group, names = served.select(labels, None)
            if clip.stat().st_size > self.settings.max_clip_bytes:
                raise ApiError(
                    413,
                    "too_large",
                    f"the clip has {clip.stat().st_size} bytes, more than {self.settings.max_clip_bytes} "
                    "(VA_MAX_CLIP_BYTES).",
                    field="clip",
                    expected=f"at most {self.settings.max_clip_bytes} bytes",
                )
            embedded = embed_clip(clip, self._encoder(group.encoder), settings=self.settings)
            if not embedded.shots:
                raise ApiError(
                    422, "invalid", "the clip has no shots to score.", field="clip", expected="a video with frames"
                )
            scores = _columns(group, names, group.scores(embedded.vectors))
        except VAError as exc:
            return _error(exc)  # type: ignore[return-value]
        durations = np.array([s.end_s - s.start_s for s in embedded.shots], dtype=np.float64)
        weights = durations / max(float(durations.sum()), 1e-9)
        whole = (weights @ scores.astype(np.float64)).round(7)
        shots = [
            {
                "start_frame": s.start_frame,
                "end_frame": s.end_frame,
                "start_s": round(s.start_s, 3),
                "end_s": round(s.end_s, 3),
                "scores": dict(zip(names, row, strict=True)),
            }
            for s, row in zip(embedded.shots, _rounded(scores), strict=True)
        ]
        return _json(  # type: ignore[return-value]
            _described(served, group, names)
            | {
                "duration_s": round(embedded.duration_s, 3),
                "fps": round(embedded.fps, 3),
                "shots": shots,
                "clip": dict(zip(names, whole.tolist(), strict=True)),
                "clip_max": dict(zip(names, scores.max(axis=0).astype(np.float64).round(7).tolist(), strict=True)),
            }
        )

    @bentoml.api(route="/v1/labels")
    def served_labels(self) -> dict[str, Any]:
        """The labels served, the model version of each, and any model that failed to load."""
        served = self.registry.current
        return _json(  # type: ignore[return-value]
            {
                "ready": served.ready,
                "labels": [m.describe() for m in served.models.values()],
                "encoders": {enc: g.labels for enc, g in served.groups.items()},
                "problems": [p.line() for p in served.problems],
            }
        )

    # -- helpers ---------------------------------------------------------------

    async def _scores(self, group: ModelGroup, names: list[str], x: np.ndarray) -> np.ndarray:
        if x.shape[0] <= INLINE_MAX_VECTORS:
            return _columns(group, names, group.scores(x))  # microseconds: a thread hop would cost more
        full = await anyio.to_thread.run_sync(group.scores, x)
        return _columns(group, names, full)

    def _encoder(self, name: str) -> Any:
        from annotator_core.encoders import load_encoder

        if name not in self._encoders:
            try:
                self._encoders[name] = load_encoder(name, device=self.settings.device)
            except EncoderUnavailable as exc:
                raise ApiError(
                    503,
                    "encoder_unavailable",
                    f"the labels were trained on encoder {name!r}, which cannot be loaded here ({exc}).",
                    field="clip",
                    expected=f"a service that can load {name!r}",
                ) from None
        return self._encoders[name]

    def _shot_store(self) -> Any:
        from annotator_core.shot_store import ShotStore

        if self._shots is None:
            self._shots = ShotStore.from_settings(self.settings)
        return self._shots


def _columns(group: ModelGroup, names: list[str], scores: np.ndarray) -> np.ndarray:
    if names == group.labels:
        return scores
    return scores[:, [group.column[n] for n in names]]


def _described(served: ServingSet, group: ModelGroup, names: list[str]) -> dict[str, Any]:
    return {
        "labels": names,
        "versions": {n: served.models[n].version for n in names},
        "encoder": group.encoder,
    }


def create_service(settings: Settings) -> Any:
    """The BentoML service for these settings: the routes, their limits and the middleware."""

    queries = QueryRoutes(lambda: _store(settings))

    class Scoring(ScoringService):
        def __init__(self) -> None:  # BentoML makes the instance (one per worker) without arguments
            super().__init__(settings)
            queries.attach(lambda: {n: m.version for n, m in self.registry.current.models.items()})

    service: Any = bentoml.service(
        name="va_scoring",
        workers=settings.scoring_workers,
        threads=4,  # shots and clips run in threads; embeddings are scored on the event loop
        traffic={"timeout": 300},  # concurrency is limited by LoadShedding, whose 429 has the one shape
        logging={"access": {"enabled": settings.scoring_access_log}},
        # An OpenTelemetry span pair per request costs more than the model itself (benchmarks/README.md);
        # the scoring routes are traced only when asked for.
        tracing={} if settings.scoring_tracing else {"excluded_urls": list(SCORING_ROUTES)},
    )(Scoring)
    # The first added is the outermost.
    service.add_asgi_middleware(LoadShedding, max_concurrency=settings.scoring_max_concurrency)
    service.add_asgi_middleware(BodyLimit, limit_for=body_limits(settings))
    service.add_asgi_middleware(ClipUpload, path=CLIP_ROUTE)
    service.add_asgi_middleware(ErrorShape)
    service.mount_asgi_app(queries.query_app(), path="/v1/query")
    service.mount_asgi_app(queries.videos_app(), path="/v1/videos")
    return service


def _store(settings: Settings) -> Any:
    from annotator_core.shot_store import ShotStore

    return ShotStore.from_settings(settings)


def body_limits(settings: Settings) -> Callable[[str], Limit]:
    """Route path -> body limit: a clip (plus its multipart framing) has its own."""
    clip = Limit(settings.max_clip_bytes + 1_000_000, "VA_MAX_CLIP_BYTES")
    general = Limit(settings.scoring_max_body_bytes, "VA_SCORING_MAX_BODY_BYTES")
    return lambda path: clip if path == CLIP_ROUTE else general


def __getattr__(name: str) -> Any:
    """``serving.scoring.service:Scoring``, what ``bentoml serve`` loads: built from the settings when asked for."""
    if name == "Scoring":
        service = create_service(load_settings())
        globals()["Scoring"] = service  # BentoML finds its import string by scanning the module
        return service
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
