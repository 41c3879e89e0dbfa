"""Real-size random-weight CLIPs (benchmarks only) and the CPU precision of the CLIP encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from annotator_core.encoders import available_encoder_specs, is_benchmark_only, l2_normalise, load_encoder
from annotator_core.encoders.clip import auto_cpu_precision, cpu_flags, resolve_cpu_precision
from annotator_core.encoders.onnx_vision import weight_type
from annotator_core.encoders.random_clip import random_clip_config
from annotator_core.errors import EncoderUnavailable
from va_cli.main import cli


def _shots(path: Path, starts: list[int], *, k: int = 3, step: int = 4) -> list[np.ndarray]:
    """For each start frame, ``k`` full-size frames ``step`` apart: the encoder resizes them itself."""
    import decord

    reader = decord.VideoReader(str(path))
    return [reader.get_batch([s + i * step for i in range(k)]).asnumpy() for s in starts]


@pytest.mark.parametrize(
    ("architecture", "vision_m", "total_m"),
    [("vit-b-32", 87.8, 151.3), ("vit-l-14", 304.0, 427.6)],
)
def test_random_clip_has_the_real_architecture(architecture: str, vision_m: float, total_m: float) -> None:
    import torch
    from transformers import CLIPModel

    # On the meta device: the real shapes without allocating (or initialising) the weights.
    with torch.device("meta"):
        model = CLIPModel(random_clip_config(architecture))
    vision = sum(p.numel() for p in model.vision_model.parameters()) + model.visual_projection.weight.numel()
    total = sum(p.numel() for p in model.parameters())
    # OpenAI's published sizes: ViT-B/32 88M vision / 151M total, ViT-L/14 304M / 428M.
    assert vision / 1e6 == pytest.approx(vision_m, abs=0.5)
    assert total / 1e6 == pytest.approx(total_m, abs=0.5)


def test_random_clip_is_marked_as_benchmark_only_and_names_its_architectures() -> None:
    assert is_benchmark_only("random-clip:vit-b-32")
    assert not any(
        is_benchmark_only(spec) for spec in ("tiny-clip", "handcrafted", "clip:openai/clip-vit-base-patch32")
    )
    assert "RANDOM weights" in available_encoder_specs()["random-clip:<vit-b-32|vit-l-14>"]
    with pytest.raises(EncoderUnavailable, match=r"'random-clip:vit-h-14'.*random-clip:vit-b-32, random-clip:vit-l-14"):
        load_encoder("random-clip:vit-h-14")


@pytest.mark.parametrize("via", ["--encoder", "VA_ENCODER"])
def test_va_ingest_refuses_random_weights_without_the_benchmark_flag(tmp_path: Path, via: str) -> None:
    env = {"VA_DATA_DIR": str(tmp_path)}
    args = ["ingest", str(tmp_path)]
    if via == "--encoder":
        args += ["--encoder", "random-clip:vit-b-32"]
    else:
        env["VA_ENCODER"] = "random-clip:vit-b-32"
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert "'random-clip:vit-b-32' has random weights" in result.output
    assert "--allow-random-weights-benchmark" in result.output
    assert not (tmp_path / "lancedb").exists()  # refused before anything was written


def _embed_footage(sample_videos_dir: Path, precision: str, *, cache_dir: Path | None = None) -> tuple[Any, np.ndarray]:
    """tiny-clip on CPU at ``precision`` (a VA_CPU_PRECISION value) and its vectors of eight shots of real footage."""
    shots = _shots(sample_videos_dir / "bikes.mp4", [0, 40, 80, 160, 200]) + _shots(
        sample_videos_dir / "bigbuckbunny.mp4", [0, 60, 110]
    )
    encoder = load_encoder("tiny-clip", device="cpu", cpu_precision=precision, cache_dir=cache_dir)
    return encoder, encoder.embed_shots(shots)


def _assert_within_stated_cosine(vectors: np.ndarray, reference: np.ndarray) -> None:
    """Cosine >= 0.99 to float32's vectors per shot, plain and centred, and the comparison is not vacuous."""
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() >= 0.99
    # Centred on float32's mean, what tells shots apart is compared too, not only a shared direction.
    centre = reference.mean(axis=0)
    centred = (l2_normalise(vectors - centre) * l2_normalise(reference - centre)).sum(axis=1)
    assert centred.min() >= 0.99
    # Not vacuous: the fast path did change the numbers, and the shots are told apart.
    assert not np.array_equal(vectors, reference)
    assert (l2_normalise(reference - centre) @ l2_normalise(reference - centre).T).min() < 0.5


def test_bfloat16_vectors_match_float32_within_the_stated_cosine(sample_videos_dir: Path) -> None:
    exact, reference = _embed_footage(sample_videos_dir, "float32")
    fast, vectors = _embed_footage(sample_videos_dir, "bfloat16")
    _assert_within_stated_cosine(vectors, reference)
    texts = ["a cyclist", "a rabbit in a meadow"]
    assert (fast.embed_texts(texts) * exact.embed_texts(texts)).sum(axis=1).min() >= 0.99


def test_int8_onnx_vectors_match_float32_within_the_stated_cosine(sample_videos_dir: Path, tmp_path: Path) -> None:
    exact, reference = _embed_footage(sample_videos_dir, "float32")
    fast, vectors = _embed_footage(sample_videos_dir, "int8", cache_dir=tmp_path)
    _assert_within_stated_cosine(vectors, reference)
    # The prepared model is on disk under the cache folder, keyed by the model's name and weight type.
    files = list(tmp_path.glob("*.onnx"))
    assert [p.name.startswith("tiny-clip-32x32-tf") for p in files] == [True]
    assert f"-{weight_type().lower()}-f32proj-" in files[0].name
    # The transformer's MatMuls run on int8 weights; the projection into the embedding space stays float32.
    ops = [(node.name, node.op_type) for node in onnx.load(str(files[0])).graph.node]
    assert any(op == "MatMulInteger" for _, op in ops)
    assert [op for name, op in ops if "visual_projection" in name] == ["MatMul"]
    # The text tower stays float32: queries embed exactly as before.
    texts = ["a cyclist", "a rabbit in a meadow"]
    np.testing.assert_array_equal(fast.embed_texts(texts), exact.embed_texts(texts))


def test_auto_precision_vectors_match_float32_within_the_stated_cosine(sample_videos_dir: Path, tmp_path: Path) -> None:
    # Whatever auto picks on the CPU running the tests (int8 with VNNI, bfloat16 with native bfloat16, float32).
    picked = resolve_cpu_precision("auto")
    _, reference = _embed_footage(sample_videos_dir, "float32")
    fast, vectors = _embed_footage(sample_videos_dir, "auto", cache_dir=tmp_path)
    assert fast.cpu_precision == picked
    if picked == "float32":
        np.testing.assert_array_equal(vectors, reference)
    else:
        _assert_within_stated_cosine(vectors, reference)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx", "avx2", "fma"}, "float32"),  # AVX2 only: bfloat16 emulated, int8 1.2-1.3x
        ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),
        ({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, "int8"),  # the AMD EPYC measured: int8 3.2x, bf16 1.4x
        ({"avx2", "avx_vnni"}, "int8"),
        ({"avx512f", "amx_bf16", "amx_int8", "avx512_vnni"}, "int8"),
    ],
)
def test_auto_precision_follows_the_cpu_flags(flags: set[str], expected: str) -> None:
    assert auto_cpu_precision(frozenset(flags)) == expected


def test_cpu_precision_is_checked_and_auto_resolves_to_a_precision() -> None:
    assert resolve_cpu_precision("auto") == auto_cpu_precision(cpu_flags())
    assert resolve_cpu_precision("auto") in ("float32", "bfloat16", "int8")
    assert resolve_cpu_precision("float32") == "float32"
    assert resolve_cpu_precision("int8") == "int8"
    with pytest.raises(
        EncoderUnavailable, match=r"CPU precision 'float16' is not one of auto, float32, bfloat16, int8"
    ):
        load_encoder("tiny-clip", device="cpu", cpu_precision="float16")
