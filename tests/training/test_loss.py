"""The contrastive objective and the step that optimises it, on a real glimpse-tiny model."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from glimpse.core.models import create_model
from glimpse.training.clip import contrastive_loss, encode_text, tokenizer_for, transforms_for
from glimpse.training.synthetic import random_caption, random_scene, render
from glimpse.training.trainer import _optimizer, training_step


def _fixed_batch(model: torch.nn.Module, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    rng = random.Random(3)
    scenes = [random_scene(rng) for _ in range(n)]
    _, transform = transforms_for(model)
    images = torch.stack([transform(render(s, 64)) for s in scenes])
    tokens = tokenizer_for("glimpse-tiny")([random_caption(s, rng) for s in scenes])
    return images, tokens


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch() -> None:
    model = create_model("glimpse-tiny").train()
    images, tokens = _fixed_batch(model)
    with torch.no_grad():
        before = contrastive_loss(model, images, tokens).item()
    optimizer = _optimizer(model, lr=1e-3, weight_decay=0.1)
    for _ in range(15):
        training_step(model, optimizer, images, tokens, lr=1e-3)
    with torch.no_grad():
        after = contrastive_loss(model, images, tokens).item()
    # Chance level for 16 pairs is ln 16 = 2.77; fitting one batch must get well below it.
    assert before > 2.0
    assert after < before * 0.5, (before, after)


def test_trimmed_text_encoding_equals_the_full_context_encoding() -> None:
    model = create_model("glimpse-tiny")
    tokens = tokenizer_for("glimpse-tiny")(
        ["red circle", "a photo of a small blue star at the top on a grey background"]
    )
    with torch.no_grad():
        full = model.encode_text(tokens, normalize=True)
        trimmed = encode_text(model, tokens, normalize=True)
    assert torch.allclose(full, trimmed, atol=1e-5)


def _logits(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    image = model.encode_image(images, normalize=True)
    text = model.encode_text(tokens, normalize=True)
    return model.logit_scale.exp() * image @ text.T


def test_with_distinct_captions_the_loss_is_clips_symmetric_cross_entropy() -> None:
    model = create_model("glimpse-tiny")
    rng = random.Random(5)
    scenes = [random_scene(rng) for _ in range(8)]
    captions = [s.describe() for s in scenes]
    assert len(set(captions)) == 8
    _, transform = transforms_for(model)
    images = torch.stack([transform(render(s, 64)) for s in scenes])
    tokens = tokenizer_for("glimpse-tiny")(captions)
    with torch.no_grad():
        loss = contrastive_loss(model, images, tokens)
        logits = _logits(model, images, tokens)
    labels = torch.arange(8)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert torch.isclose(loss, expected, atol=1e-4)


def test_pairs_with_the_same_caption_are_positives_of_each_other() -> None:
    model = create_model("glimpse-tiny")
    rng = random.Random(6)
    scenes = [random_scene(rng) for _ in range(3)]
    _, transform = transforms_for(model)
    images = torch.stack([transform(render(s, 64)) for s in scenes])
    tokens = tokenizer_for("glimpse-tiny")(["a red circle", "a red circle", "a blue star"])
    with torch.no_grad():
        loss = contrastive_loss(model, images, tokens)
        logits = _logits(model, images, tokens)
    # Image 0 or 1 may match either "a red circle" text: the loss asks for their summed probability.
    p_image_to_text, p_text_to_image = logits.softmax(dim=1), logits.T.softmax(dim=1)
    expected = -(
        torch.log(p_image_to_text[:2, :2].sum(dim=1)).sum() + torch.log(p_image_to_text[2, 2])
        + torch.log(p_text_to_image[:2, :2].sum(dim=1)).sum() + torch.log(p_text_to_image[2, 2])
    ) / 6  # fmt: skip
    one_hot = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.T, torch.arange(3))) / 2
    assert torch.isclose(loss, expected, atol=1e-4)
    assert loss < one_hot - 0.1  # plain CLIP would charge for not telling two red circles apart
