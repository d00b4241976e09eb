"""Image preprocessing as plain data: what a decode worker needs, without importing torch.

Decode workers are separate processes; importing torch in each would cost seconds of CPU per
worker, time taken from the model on a small machine. This module needs only Pillow and NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image


# Up to this many times the crop's area, an image is resized whole and then cropped, exactly as
# open_clip's transform does; beyond it only the cropped region is resampled.
MAX_RESIZE_AREA = 4


@dataclass(frozen=True)
class PreprocessConfig:
    """What a decode worker needs to turn an image into the model's input tensor (picklable)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def to_array(self, img: Image.Image) -> np.ndarray:
        """The model input for a PIL RGB image as (3, S, S) float32, without torch:
        ``normalize(crop(img))``.

        Mirrors open_clip's eval transform (shortest-side resize, centre crop, normalise) so
        decode workers need only Pillow and NumPy; a test checks it against ``transform()``.
        """
        return self.normalize(self.crop(img))

    def crop(self, img: Image.Image) -> np.ndarray:
        """The resized, centre-cropped image as (S, S, 3) uint8: the model input before
        normalisation, a quarter of its bytes (what the Ray runner ships between nodes).

        When the resized image would be much larger than the crop (an extreme aspect ratio),
        only the part that survives the crop is resampled (Pillow's ``box``: the same filter
        taps, rounded slightly differently), so the work and the memory stay bounded by the
        model's input whatever the shape: a 1 x 40,000 px strip would otherwise become
        224 x 8,960,000 px (~6 GB) before the crop.
        """
        from PIL import Image

        size = self.image_size
        w, h = img.size
        resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
        if self.resize_mode == "squash":
            img = img.resize((size, size), resample)
        else:
            # torchvision's Resize(int): the short side becomes `size`, the long one is truncated;
            # then the centre size x size crop, as a box in the source's coordinates.
            if w <= h:
                new_w, new_h = size, int(size * h / w)
            else:
                new_w, new_h = int(size * w / h), size
            left = round((new_w - size) / 2.0)
            top = round((new_h - size) / 2.0)
            sx, sy = new_w / w, new_h / h
            box = (left / sx, top / sy, (left + size) / sx, (top + size) / sy)
            if new_w * new_h > MAX_RESIZE_AREA * size * size:
                img = img.resize((size, size), resample, box=box)
            else:
                if (new_w, new_h) != (w, h):
                    img = img.resize((new_w, new_h), resample)
                img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8)

    def normalize(self, crops: np.ndarray) -> np.ndarray:
        """(..., S, S, 3) uint8 crops -> (..., 3, S, S) float32 model input, scaled to [0, 1] and
        standardised with the model's mean and std; element for element the same arithmetic
        whether one crop or a stacked batch comes in."""
        pixels = np.asarray(crops, dtype=np.float32) / 255.0
        mean, std = np.asarray(self.mean, dtype=np.float32), np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(np.moveaxis((pixels - mean) / std, -1, -3))

    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        import open_clip

        return open_clip.image_transform(
            self.image_size,
            is_train=False,
            mean=self.mean,
            std=self.std,
            interpolation=self.interpolation,
            resize_mode=self.resize_mode,
        )
