"""Real-size random-weight CLIPs (benchmarks only) and the CPU precision of the CLIP encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from annotator_core.encoders import available_encoder_specs, is_benchmark_only, l2_normalise, load_encoder
from annotator_core.encoders.clip import resolve_cpu_precision
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


def test_bfloat16_vectors_match_float32_within_the_stated_cosine(sample_videos_dir: Path) -> None:
    shots = _shots(sample_videos_dir / "bikes.mp4", [0, 40, 80, 160, 200]) + _shots(
        sample_videos_dir / "bigbuckbunny.mp4", [0, 60, 110]
    )
    exact = load_encoder("tiny-clip", device="cpu", cpu_precision="float32")
    fast = load_encoder("tiny-clip", device="cpu", cpu_precision="bfloat16")
    reference, vectors = exact.embed_shots(shots), fast.embed_shots(shots)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() >= 0.99
    # Centred on float32's mean, what tells shots apart is compared too, not only a shared direction.
    centre = reference.mean(axis=0)
    centred = (l2_normalise(vectors - centre) * l2_normalise(reference - centre)).sum(axis=1)
    assert centred.min() >= 0.99
    # Not vacuous: the bfloat16 path did change the numbers, and the shots are told apart.
    assert not np.array_equal(vectors, reference)
    assert (l2_normalise(reference - centre) @ l2_normalise(reference - centre).T).min() < 0.5
    texts = ["a cyclist", "a rabbit in a meadow"]
    assert (fast.embed_texts(texts) * exact.embed_texts(texts)).sum(axis=1).min() >= 0.99


def test_int8_onnx_vectors_match_float32_within_the_stated_cosine(sample_videos_dir: Path, tmp_path: Path) -> None:
    shots = _shots(sample_videos_dir / "bikes.mp4", [0, 40, 80, 160, 200]) + _shots(
        sample_videos_dir / "bigbuckbunny.mp4", [0, 60, 110]
    )
    exact = load_encoder("tiny-clip", device="cpu", cpu_precision="float32")
    fast = load_encoder("tiny-clip", device="cpu", cpu_precision="int8", cache_dir=tmp_path)
    reference, vectors = exact.embed_shots(shots), fast.embed_shots(shots)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() >= 0.99
    centre = reference.mean(axis=0)
    centred = (l2_normalise(vectors - centre) * l2_normalise(reference - centre)).sum(axis=1)
    assert centred.min() >= 0.99
    # Not vacuous: the vision tower did run quantised, and the shots are told apart.
    assert not np.array_equal(vectors, reference)
    assert (l2_normalise(reference - centre) @ l2_normalise(reference - centre).T).min() < 0.5
    # The prepared model is on disk under the cache folder, keyed by the model's name, for the next process.
    assert [p.name.startswith("tiny-clip-32x32-tf") for p in tmp_path.glob("*.onnx")] == [True]
    # The text tower stays float32: queries embed exactly as before.
    texts = ["a cyclist", "a rabbit in a meadow"]
    np.testing.assert_array_equal(fast.embed_texts(texts), exact.embed_texts(texts))


def test_cpu_precision_is_checked_and_auto_resolves_to_a_precision() -> None:
    assert resolve_cpu_precision("auto") in ("float32", "bfloat16")
    assert resolve_cpu_precision("float32") == "float32"
    assert resolve_cpu_precision("int8") == "int8"
    with pytest.raises(
        EncoderUnavailable, match=r"CPU precision 'float16' is not one of auto, float32, bfloat16, int8"
    ):
        load_encoder("tiny-clip", device="cpu", cpu_precision="float16")
