"""The shipped glimpse-demo model understands shapes and colours (checked on every CI run)."""

from __future__ import annotations

import torch

from glimpse.core.models import DEMO_CHECKPOINT, DEMO_MODEL, TINY_MODEL, create_model, load_state_dict
from glimpse.training.benchmark import shape_colour_recall

# Not the training seed (1), and a different RNG stream: images the model has never seen.
GALLERY_SEED = 2024


def test_demo_model_finds_the_named_shape_and_colour_in_unseen_images() -> None:
    result = shape_colour_recall(create_model(DEMO_MODEL), DEMO_MODEL, gallery_size=400, seed=GALLERY_SEED)
    assert result.recall_at_5 >= 0.9, str(result)


def test_an_untrained_model_fails_the_same_check() -> None:
    # Shows the check measures learning, not the gallery: random weights are far below the bar.
    result = shape_colour_recall(create_model(TINY_MODEL), TINY_MODEL, gallery_size=400, seed=GALLERY_SEED)
    assert result.recall_at_5 < 0.6, str(result)


def test_demo_checkpoint_is_small_half_precision_safetensors() -> None:
    assert DEMO_CHECKPOINT.stat().st_size <= 10 * 1024 * 1024
    state = load_state_dict(DEMO_CHECKPOINT)
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float16}
