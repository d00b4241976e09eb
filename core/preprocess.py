"""Image preprocessing as plain data: what a decode worker needs, without importing torch.

Decode workers are separate processes; importing torch in each would cost seconds of CPU per
worker, time taken from the model on a small machine. This module needs only Pillow and NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PreprocessConfig:
    """What a decode worker needs to turn an image into the model's input tensor (picklable)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def to_array(self, img) -> np.ndarray:
        """The model input for a PIL RGB image as (3, S, S) float32, without torch.

        Mirrors open_clip's eval transform (shortest-side resize, centre crop, normalise) so
        decode workers need only Pillow and NumPy; a test checks it against ``transform()``.
        """
        from PIL import Image

        size = self.image_size
        w, h = img.size
        # torchvision's Resize(int): the short side becomes `size`, the long side is truncated.
        if w <= h:
            new_w, new_h = size, int(size * h / w)
        else:
            new_w, new_h = int(size * w / h), size
        if (new_w, new_h) != (w, h):
            resample = (
                Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
            )
            img = img.resize((new_w, new_h), resample)
        left = round((new_w - size) / 2.0)
        top = round((new_h - size) / 2.0)
        img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = (arr - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def transform(self):
        import open_clip

        return open_clip.image_transform(
            self.image_size,
            is_train=False,
            mean=self.mean,
            std=self.std,
            interpolation=self.interpolation,
            resize_mode=self.resize_mode,
        )
