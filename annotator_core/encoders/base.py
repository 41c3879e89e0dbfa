"""The encoder interface: frames of shots -> one L2-normalised vector per shot; text -> same space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotator_core.errors import EncoderUnavailable


@dataclass(frozen=True)
class EncoderInfo:
    """What a job's driver needs of an encoder (the workers load the model itself)."""

    name: str
    dim: int
    frame_size: tuple[int, int]  # (height, width)
    has_text: bool

    @classmethod
    def of(cls, encoder: Encoder) -> EncoderInfo:
        return cls(encoder.name, int(encoder.dim), (int(encoder.frame_size[0]), int(encoder.frame_size[1])),
                   encoder.has_text)  # fmt: skip


class Encoder(ABC):
    """Maps the sampled frames of a shot to one vector and, with a text tower, text to the same space.

    ``embed_shots`` takes one uint8 array ``[k, H, W, 3]`` (RGB) per shot and
    returns float32 ``[n_shots, dim]`` with unit-length rows.
    """

    name: str
    dim: int
    has_text: bool
    #: (height, width) the frames should be resized to before they reach the encoder.
    frame_size: tuple[int, int]

    @abstractmethod
    def embed_shots(self, shots: Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise EncoderUnavailable(
            f"encoder {self.name!r} has no text tower, so text search is not possible; "
            "search by example or by video instead, or ingest with a vision-language model (clip:…)."
        )


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
