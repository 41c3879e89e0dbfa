"""Encoders on real frames: the tiny CLIP (real transformers code path), a saved folder, and the offline encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from va_testing import reserved_port

from annotator_core.encoders import EncoderInfo, available_encoder_specs, describe_encoder, load_encoder
from annotator_core.errors import EncoderUnavailable


def _frames(path: Path, starts: list[int], *, k: int = 3, step: int = 4, size=(144, 256)) -> list[np.ndarray]:
    """For each start frame, ``k`` frames ``step`` apart, resized to ``size`` as the pipeline would."""
    import cv2
    import decord

    reader = decord.VideoReader(str(path))
    shots = []
    for start in starts:
        batch = reader.get_batch([start + i * step for i in range(k)]).asnumpy()
        shots.append(np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA) for f in batch]))
    return shots


@pytest.fixture(scope="module")
def bikes(sample_videos_dir: Path) -> list[np.ndarray]:
    return _frames(sample_videos_dir / "bikes.mp4", [0, 40, 80, 160, 200])


@pytest.fixture(scope="module")
def bunny(sample_videos_dir: Path) -> list[np.ndarray]:
    return _frames(sample_videos_dir / "bigbuckbunny.mp4", [0, 30, 60, 90, 110])


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny-clip", device="cpu")


@pytest.fixture(scope="module")
def handcrafted():
    return load_encoder("handcrafted")


def test_specs_are_listed_and_an_unknown_spec_names_them() -> None:
    specs = available_encoder_specs()
    assert {"tiny-clip", "handcrafted"} <= set(specs)
    assert any(s.startswith("clip:") for s in specs)
    with pytest.raises(EncoderUnavailable, match=r"unknown encoder spec 'resnet'.*handcrafted"):
        load_encoder("resnet")
    with pytest.raises(EncoderUnavailable, match="names no model"):
        load_encoder("clip:")


def test_offline_hub_id_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EncoderUnavailable) as info:
        load_encoder("clip:openai/clip-vit-base-patch32")
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message
    assert "clip:/path/to/clip-vit-base-patch32" in message and "save_pretrained" in message
    assert "handcrafted" in message


def test_unreachable_hub_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with reserved_port() as port:  # bound and never listening: connections are refused at once, and it stays ours
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        with pytest.raises(EncoderUnavailable, match=r"cannot be reached.*clip:/path/to/clip-vit-base-patch32"):
            load_encoder("clip:someone/some-clip-model")


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncoderUnavailable, match="not a folder with a saved model"):
        load_encoder(f"clip:{tmp_path / 'nope'}")
    with pytest.raises(EncoderUnavailable, match=r"has no config\.json"):
        load_encoder(f"clip:{tmp_path}")  # a folder, but empty
    (tmp_path / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(EncoderUnavailable, match="could not be loaded"):
        load_encoder(f"clip:{tmp_path}")  # a config, but no weights or tokenizer


def test_tiny_clip_is_deterministic_unit_length_and_pools_frames(tiny, bikes) -> None:
    vectors = tiny.embed_shots(bikes)
    assert vectors.shape == (len(bikes), tiny.dim) and vectors.dtype == np.float32
    assert tiny.name == "tiny-clip" and tiny.has_text and tiny.dim == 32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = load_encoder("tiny-clip", device="cpu").embed_shots(bikes)
    np.testing.assert_array_equal(vectors, again)
    # A shot's vector does not depend on which other shots share its batch.
    np.testing.assert_allclose(tiny.embed_shots(bikes[2:3])[0], vectors[2], atol=1e-5)
    # Mean pooling: a shot of the same frame repeated embeds like that frame alone.
    frame = bikes[0][:1]
    np.testing.assert_allclose(tiny.embed_shots([np.repeat(frame, 4, axis=0)]), tiny.embed_shots([frame]), atol=1e-5)


def test_tiny_clip_same_image_any_size_is_close(tiny, bikes) -> None:
    import cv2

    shot = bikes[1]
    bigger = np.stack([cv2.resize(f, (512, 288), interpolation=cv2.INTER_CUBIC) for f in shot])
    a, b = tiny.embed_shots([shot, bigger])
    other = tiny.embed_shots([255 - shot])[0]
    assert float(a @ b) > 0.98
    assert float(a @ b) > float(a @ other)


def test_tiny_clip_text_shares_the_image_space(tiny, bikes) -> None:
    texts = tiny.embed_texts(["a cyclist on a mountain road", "a rabbit in a meadow", "a cyclist on a mountain road"])
    assert texts.shape == (3, tiny.dim)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(texts[0], texts[2], atol=1e-6)
    assert not np.allclose(texts[0], texts[1], atol=1e-3)
    scores = tiny.embed_shots(bikes) @ texts[0]  # cosine scores against shot vectors are defined
    assert np.all(np.abs(scores) <= 1.0 + 1e-5)


def test_a_saved_folder_loads_through_the_clip_spec(tiny, bikes, tmp_path: Path) -> None:
    from transformers import CLIPImageProcessorPil

    folder = tmp_path / "tiny-clip-saved"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    loaded = load_encoder(f"clip:{folder}", device="cpu")
    assert loaded.name == f"clip:{folder}" and loaded.dim == tiny.dim and loaded.has_text
    np.testing.assert_allclose(loaded.embed_shots(bikes), tiny.embed_shots(bikes), atol=1e-5)
    np.testing.assert_allclose(loaded.embed_texts(["a bike"]), tiny.embed_texts(["a bike"]), atol=1e-5)


def test_describing_a_saved_folder_matches_loading_it_and_needs_its_weights(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ingest driver describes the encoder (name, dim, frame size) without loading the model; it must say what
    # loading would, and refuse a folder the workers could not load.
    from transformers import CLIPImageProcessorPil

    folder = tmp_path / "tiny-clip-saved"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    loaded = EncoderInfo.of(load_encoder(f"clip:{folder}", device="cpu"))
    import annotator_core.encoders.hub as hub

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("describing a saved folder must not load the model")

    monkeypatch.setattr(hub, "load_clip", no_loading)
    described = describe_encoder(f"clip:{folder}")
    assert described == loaded
    assert (described.dim, described.frame_size, described.has_text) == (tiny.dim, (32, 32), True)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(EncoderUnavailable, match="has no weights"):
        describe_encoder(f"clip:{folder}")
    with pytest.raises(EncoderUnavailable, match="names no model"):
        describe_encoder("clip:")


@pytest.mark.parametrize("spec", ["handcrafted", "tiny-clip", "random-clip:vit-b-32"])
def test_describing_an_encoder_matches_loading_it(spec: str) -> None:
    assert describe_encoder(spec) == EncoderInfo.of(load_encoder(spec, device="cpu"))


def test_describing_an_unknown_architecture_or_spec_is_refused() -> None:
    with pytest.raises(EncoderUnavailable, match="no known architecture"):
        describe_encoder("random-clip:vit-z-99")
    with pytest.raises(EncoderUnavailable, match="unknown encoder spec"):
        describe_encoder("nope")


def test_handcrafted_is_deterministic_unit_length_and_has_no_text(handcrafted, bikes) -> None:
    vectors = handcrafted.embed_shots(bikes)
    assert vectors.shape == (len(bikes), 256) and handcrafted.dim == 256 and not handcrafted.has_text
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, load_encoder("handcrafted").embed_shots(bikes))
    with pytest.raises(EncoderUnavailable, match="no text tower"):
        handcrafted.embed_texts(["a bike"])


def test_handcrafted_separates_different_footage(handcrafted, bikes, bunny) -> None:
    a = handcrafted.embed_shots(bikes)
    b = handcrafted.embed_shots(bunny)
    within = np.concatenate([(a @ a.T)[np.triu_indices(len(a), 1)], (b @ b.T)[np.triu_indices(len(b), 1)]])
    across = (a @ b.T).ravel()
    # Every shot's nearest other shot comes from the same title.
    both = np.concatenate([a, b])
    sims = both @ both.T
    np.fill_diagonal(sims, -np.inf)
    title = np.array([0] * len(a) + [1] * len(b))
    assert np.array_equal(title[sims.argmax(axis=1)], title)
    assert within.mean() > across.mean() + 0.1


def test_handcrafted_sees_motion(handcrafted, bikes) -> None:
    import cv2

    from annotator_core.encoders.handcrafted import BLOCKS, motion_statistics

    still = np.repeat(bikes[0][:1], 3, axis=0)
    frame = bikes[0][0]
    panning = np.stack([np.roll(frame, 6 * i, axis=1) for i in range(3)])  # the camera pans right
    v_still, v_pan = handcrafted.embed_shots([still, panning])
    assert float(v_still @ v_pan) < 0.99

    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in panning]
    motion = motion_statistics(grays)
    assert motion.shape == (BLOCKS["motion"],)
    quadrant_flow = motion[32:40].reshape(4, 2)  # mean (dx, dy) per quadrant, pixels / 8
    assert quadrant_flow[:, 0].mean() > 0.1 and abs(quadrant_flow[:, 1].mean()) < 0.05
    assert motion[-6] > 0.2  # a good part of the frame moves by more than a pixel
    still_motion = motion_statistics([grays[0], grays[0]])
    assert np.linalg.norm(still_motion) < 0.1 * np.linalg.norm(motion)  # a still shot: next to no motion
