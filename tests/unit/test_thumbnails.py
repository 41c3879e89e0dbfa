"""A shot's JPEG thumbnail: the card's width, and never a towering picture for an extreme aspect ratio."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotator_core.media.sampling import jpeg_thumbnail


def _size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return image.shape[1], image.shape[0]


@pytest.mark.parametrize(
    ("frame_wh", "thumb_wh"),
    [
        ((1280, 720), (320, 180)),  # landscape: the card's width
        ((1080, 1920), (320, 569)),  # a phone's portrait video: as tall as it is
        ((32, 32), (320, 320)),  # tiny: scaled up to the card
        ((120, 1280), (60, 640)),  # a banner turned upright: fitted into 320 x 640 at its own shape, not 320x3413
    ],
)
def test_a_thumbnail_is_the_card_width_unless_that_would_make_it_over_twice_the_card_width_tall(
    frame_wh, thumb_wh
) -> None:
    width, height = frame_wh
    frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert _size(jpeg_thumbnail(frame, 320)) == thumb_wh
