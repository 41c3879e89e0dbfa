"""One frozen settings object, read once at the edge and passed down.

Settings come from, in order of precedence: keyword arguments, ``VA_*``
environment variables, the TOML file named by ``VA_CONFIG`` (or ``--config``),
then the defaults below. The defaults are the embedded default: everything
lives in one data folder (``./va-data``) with LanceDB in a sub-folder and
SQLite beside it, so nothing else has to run.

This module is the only place that reads ``os.environ``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from annotator_core.errors import ConfigError

ENV_PREFIX = "VA_"


class Settings(BaseSettings):
    """Every knob of Video Annotator. Each field's description is its one-line help."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        env_nested_delimiter=None,
    )

    # --- storage -----------------------------------------------------------
    data_dir: Path = Field(Path("va-data"), description="Folder for the embedded default stores.")
    lancedb_uri: str = Field(
        "", description="LanceDB URI (folder, s3://bucket/prefix, gs://…); empty means DATA_DIR/lancedb."
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Object-store options for LanceDB as JSON (e.g. aws_endpoint, region, keys).",
    )
    database_url: str = Field("", description="SQLAlchemy URL of the annotation store; empty means SQLite in DATA_DIR.")

    # --- encoder -----------------------------------------------------------
    encoder: str = Field(
        "clip:openai/clip-vit-base-patch32",
        description="Encoder spec: clip:<hub id or local folder>, tiny-clip, or handcrafted.",
    )
    device: str = Field("auto", description="Torch device for encoders: auto, cpu or cuda.")
    cpu_precision: Literal["auto", "float32", "bfloat16", "int8"] = Field(
        "auto",
        description="CLIP on CPU: float32, bfloat16 autocast, or int8 (vision tower as ONNX Runtime int8, text "
        "float32); auto is int8 on CPUs with VNNI, else bfloat16 on CPUs with native bfloat16, else float32.",
    )

    # --- active learning ----------------------------------------------------
    min_positive: int = Field(10, ge=1, description="Positive annotations needed before a build.")
    min_negative: int = Field(10, ge=1, description="Negative annotations needed before a build.")
    feed_size: int = Field(50, ge=1, le=10_000, description="Shots per feed after a build.")
    cv_folds: int = Field(
        2,
        ge=2,
        le=20,
        description="Folds of the model-quality cross-validation (repeated; the paper used 5, which scores "
        "20 labels on folds of four shots: see annotator_core.metrics.QUALITY_FOLDS).",
    )
    n_clusters: int = Field(10, ge=2, le=10_000, description="k of the k-means clusters for data diversity.")
    diversity_cap: int = Field(10, ge=1, description="Per-cluster count cap s of the data-diversity score.")
    recommender: Literal["ucb", "epsilon-greedy", "round-robin", "none"] = Field(
        "ucb", description="Recommender that suggests where to label next."
    )
    ucb_c: float = Field(0.01, ge=0, description="Exploration constant c of the UCB recommender.")
    epsilon: float = Field(0.25, ge=0, le=1, description="Exploration rate of the epsilon-greedy recommender.")
    classifier_c: float = Field(
        10.0, gt=0, description="Inverse L2 regularisation C of the label classifier on unit-length embeddings."
    )

    # --- compressed corpus (builds at catalog scale) -------------------------
    corpus_scorer: Literal["auto", "memory", "mapped"] = Field(
        "auto", description="How a build scores the corpus: memory (float32 per worker), mapped (shared int8 files)."
    )
    corpus_mapped_from: int = Field(
        500_000, ge=0, description="With corpus_scorer=auto, shots from which builds use the mapped corpus."
    )
    corpus_dir: str = Field("", description="Folder of the compressed corpus files; empty means DATA_DIR/corpus.")
    corpus_partitions: int = Field(0, ge=0, description="IVF partitions of the compressed corpus; 0 picks ~sqrt(N).")
    corpus_prune: bool = Field(
        False, description="Skip corpus partitions whose score bound cannot reach a feed (pays off on tight clusters)."
    )
    corpus_threads: int = Field(2, ge=1, le=64, description="Threads (in-process shards) that score the corpus.")
    corpus_max_candidates: int = Field(
        4096, ge=100, description="Most candidate shots per feed and shard re-scored exactly in float32."
    )
    corpus_search_nprobes: int = Field(
        24, ge=1, description="Corpus partitions a search probes, nearest first (reading at most as many rows as that)."
    )
    corpus_search_rerank: int = Field(
        20,
        ge=0,
        le=1000,
        description="Best hits of a corpus search re-scored from the float32 copy (concurrent "
        "disk reads); 0: ranked by their int8 scores.",
    )
    corpus_ray_shards: int = Field(
        0, ge=0, description="Ray actors holding corpus shards for `va serve` builds; 0 scores in-process."
    )

    # --- ingest ------------------------------------------------------------
    ray_address: str = Field("", description="Ray cluster address for ingest; empty starts local Ray.")
    shot_detector: Literal["adaptive", "content", "threshold"] = Field(
        "adaptive", description="PySceneDetect detector used for shot boundaries."
    )
    detector_threshold: float = Field(0.0, ge=0, description="Detector threshold; 0 uses the detector's own default.")
    min_shot_seconds: float = Field(
        0.32,
        gt=0,
        le=60,
        description="Shortest shot in seconds (PySceneDetect min_scene_len, in frames at each title's rate, at "
        "least 1): 8 frames at 25 fps, 2 at 6 fps, 1 in a 1 fps timelapse.",
    )
    min_shot_frames: int = Field(
        0, ge=0, description="Shortest shot as a fixed count of frames at every frame rate; 0: from min_shot_seconds."
    )
    detect_downscale: int = Field(
        0, ge=0, description="Downscale factor for shot detection; 0 picks one from the frame width."
    )
    frames_per_shot: int = Field(3, ge=1, le=64, description="Frames sampled evenly from each shot.")
    thumbnail_width: int = Field(
        320,
        ge=32,
        le=1920,
        description="Width of the JPEG thumbnail kept per shot (at most twice this tall: taller frames are narrower).",
    )
    max_video_duration_s: float = Field(4 * 3600.0, gt=0, description="Videos longer than this are refused at probe.")
    max_video_pixels: int = Field(
        3840 * 2160, gt=0, description="Videos with more pixels per frame than this are refused."
    )
    max_video_frames: int = Field(
        1_000_000, gt=0, description="Videos declaring more frames than this are refused at probe, before any decode."
    )
    probe_timeout_s: float = Field(60.0, gt=0, description="Seconds ffprobe may take reading a file's metadata.")
    follow_external_links: bool = Field(
        False, description="Ingest follows symlinks that point outside the folder being ingested."
    )
    embed_batch_size: int = Field(64, ge=1, description="Shots per batch sent to an embedding actor.")
    embed_concurrency: int = Field(1, ge=1, description="Embedding actors in the pool (one GPU each if any).")
    decode_concurrency: int = Field(0, ge=0, description="Parallel decode tasks; 0 means one per CPU.")
    chunk_seconds: float = Field(
        600.0, ge=0, description="Titles longer than this are decoded in chunks of this length in parallel; 0: never."
    )
    decode_retries: int = Field(
        2, ge=0, description="Retries of a video whose decoder crashed before it is marked failed."
    )
    write_batch_size: int = Field(2048, ge=1, description="Shots per LanceDB write (each write is a fragment).")
    index_threshold: int = Field(20_000, ge=0, description="Shots at which an ANN index is built; exact search below.")
    index_partitions: int = Field(0, ge=0, description="IVF partitions of the ANN index; 0 picks sqrt(N).")
    index_type: Literal["IVF_FLAT", "IVF_SQ", "IVF_RQ", "IVF_PQ", "IVF_HNSW_SQ"] = Field(
        "IVF_SQ", description="LanceDB ANN index type (cosine); see benchmarks/README.md for the trade-offs."
    )
    search_nprobes: int = Field(32, ge=1, description="IVF partitions probed per ANN query.")
    search_refine_factor: int = Field(4, ge=1, description="Refine factor of ANN queries (exact re-rank).")
    strict: bool = Field(
        False, description="Exit non-zero from ingest when any video failed or a file it names was left out."
    )
    ingest_score: bool = Field(
        False, description="At the end of an ingest, score the new shots for every published label (va ingest --score)."
    )
    map_at_ingest: bool = Field(
        False, description="After an ingest, also lay out or extend the corpus map (else va map; va demo does)."
    )
    map_fit_sample: int = Field(
        100_000, ge=4, le=2_000_000, description="Shots the corpus map's layout is fitted on; the rest are placed."
    )
    map_max_points: int = Field(
        200_000, ge=1_000, le=5_000_000, description="Most points the map view is sent; beyond it a seeded sample."
    )

    # --- annotation service ------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the annotation service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the annotation service.")
    workers: int = Field(1, ge=1, description="Worker processes of the annotation service.")
    session_secret: str = Field("", description="Secret that signs browser sessions; empty creates one in DATA_DIR.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body the services accept.")
    max_batch: int = Field(1000, ge=1, description="Most items (shots, rows) one request may carry.")
    max_import_rows: int = Field(100_000, ge=1, description="Most rows one CSV import may carry.")
    max_import_bytes: int = Field(20_000_000, ge=1024, description="Largest CSV file one import may send.")
    search_limit: int = Field(200, ge=1, description="Most results one search returns.")
    login_max_failures: int = Field(5, ge=1, description="Failed password logins for a name before it is locked.")
    login_lockout_s: float = Field(300.0, gt=0, description="Seconds a name stays locked after too many failures.")
    login_max_failures_per_address: int = Field(
        20, ge=1, description="Failed logins from one client address before it waits, so it cannot lock out everyone."
    )

    # --- scoring service ---------------------------------------------------
    model_store: str = Field("", description="BentoML model store folder; empty means DATA_DIR/bentoml.")
    scoring_host: str = Field("127.0.0.1", description="Address the scoring service listens on.")
    scoring_port: int = Field(3000, ge=1, le=65535, description="Port of the scoring service.")
    scoring_max_vectors: int = Field(4096, ge=1, description="Most vectors in one scoring request.")
    scoring_max_concurrency: int = Field(
        64, ge=1, description="Requests in flight before the scoring service sheds load with 429."
    )
    scoring_pins: dict[str, str] = Field(
        default_factory=dict, description="Model version served per label as JSON; others serve latest."
    )
    max_clip_bytes: int = Field(200_000_000, ge=1, description="Largest clip the scoring service accepts.")
    max_clip_duration_s: float = Field(600.0, gt=0, description="Longest clip the scoring service accepts.")
    scoring_workers: int = Field(1, ge=1, description="Worker processes of the scoring service (one core each).")
    scoring_reload_s: float = Field(
        2.0, gt=0, description="Seconds between checks of the model store for newly published models."
    )
    scoring_max_body_bytes: int = Field(
        64_000_000, ge=1024, description="Largest request body of the scoring routes other than clips."
    )
    scoring_tracing: bool = Field(
        False, description="Trace the scoring routes with OpenTelemetry (costs about 0.5 ms a request)."
    )
    scoring_access_log: bool = Field(
        False, description="Log one line per scoring request (costs about a tenth of a millisecond each)."
    )

    # --- browser proxies (issue 17) ------------------------------------------
    proxy_mode: Literal["on-demand", "ingest", "off"] = Field(
        "on-demand",
        description="Proxies for sources a browser cannot play: on-demand (per shot, cached), ingest (titles), off.",
    )
    proxy_height: int = Field(480, ge=144, le=2160, description="Height in pixels of browser proxies (never upscaled).")
    proxy_codec: Literal["h264", "vp9"] = Field("h264", description="Proxy codec: h264 (MP4 +faststart) or vp9 (WebM).")
    proxy_dir: str = Field("", description="Folder or object-store URI of the proxies; empty means DATA_DIR/proxies.")
    proxy_timeout_s: float = Field(600.0, gt=0, description="Seconds ffmpeg may take making one proxy.")

    # --- near-duplicate shots (issue 16) ---------------------------------------
    duplicates: bool = Field(True, description="Find near-duplicate shots at ingest and group them (off turns it off).")
    duplicate_threshold: float = Field(
        0.0, ge=0, le=1, description="Cosine at which two shots are near-duplicates; 0 uses the encoder's default."
    )
    duplicate_partitions: int = Field(
        0, ge=0, description="IVF partitions of the near-duplicate self-join; 0 picks ~sqrt(N)."
    )
    duplicate_fingerprint_distance: int = Field(
        8, ge=-1, le=31, description="Bits (of 63) within which thumbnail fingerprints are near-duplicates; -1: off."
    )
    duplicate_fingerprint_min_cosine: float = Field(
        0.5, ge=0, le=1, description="Embedding cosine a fingerprint match also needs (guards against look-alikes)."
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    # --- derived -----------------------------------------------------------
    @property
    def resolved_lancedb_uri(self) -> str:
        return self.lancedb_uri or str(self.data_dir / "lancedb")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'annotations.db'}"

    @property
    def resolved_corpus_dir(self) -> Path:
        return Path(self.corpus_dir) if self.corpus_dir else self.data_dir / "corpus"

    @property
    def resolved_model_store(self) -> Path:
        return Path(self.model_store) if self.model_store else self.data_dir / "bentoml"

    def ensure_data_dir(self) -> Path:
        """Create the data folder, failing with one clear line if it cannot be written."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".va-write-check"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"VA_DATA_DIR={self.data_dir} is not writable ({exc.strerror or exc}); "
                "set VA_DATA_DIR to a folder you can write."
            ) from None
        return self.data_dir


def setting_help() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        rows.append((ENV_PREFIX + name.upper(), _show(default), field.description or ""))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    if isinstance(value, Path):
        return str(value)
    if value == "":
        return "(empty)"
    return str(value)


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read settings once: overrides > VA_* environment > config file > defaults.

    Unknown ``VA_*`` variables, unknown keys in the config file and bad values
    raise :class:`ConfigError` with one line naming the setting and the fix.
    """
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    known.add(ENV_PREFIX + "CONFIG")
    # Variables the test suite reads for its own servers are not settings of the product.
    known.add(ENV_PREFIX + "TEST_POSTGRES_URL")
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]}; known settings are listed by `va status --settings` "
            "and in the README's Configuration section — fix the name or unset it."
        )
    values: dict[str, Any] = {}
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if path:
        values.update(_read_config_file(Path(path)))
    values.update(overrides)
    env_names = {k[len(ENV_PREFIX) :].lower() for k in os.environ if k.startswith(ENV_PREFIX)}
    for name in env_names & set(values):
        values.pop(name)  # the environment wins over the config file
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise ConfigError(
            f"setting {ENV_PREFIX}{field.upper()} is invalid: {err['msg']} "
            f"(got {err.get('input')!r}); fix the value in the environment or config file."
        ) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; fix VA_CONFIG or --config.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}; fix the file.") from None
    section = data.get("va", data)
    unknown = sorted(set(section) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} in {path}; fix the key (see the README's Configuration).")
    return dict(section)
