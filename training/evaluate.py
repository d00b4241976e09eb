"""Retrieval recall on held-out pairs: text->image and image->text, at 1 and 5."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from PIL import Image

from glimpse.core.models import ClipModel
from glimpse.training.clip import encode_text
from glimpse.training.data import ImageTransform, Pair, PairDataset, Sample, Tokenizer


@dataclass(frozen=True)
class Recall:
    text_to_image_at_1: float
    text_to_image_at_5: float
    image_to_text_at_1: float
    image_to_text_at_5: float
    pairs: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"text->image R@1 {self.text_to_image_at_1:.3f} R@5 {self.text_to_image_at_5:.3f}, "
            f"image->text R@1 {self.image_to_text_at_1:.3f} R@5 {self.image_to_text_at_5:.3f} "
            f"({self.pairs} pairs)"
        )


def recall_at(similarity: torch.Tensor, relevant: torch.Tensor, k: int) -> float:
    """Share of queries (rows) with at least one relevant item among their ``k`` most similar."""
    k = min(k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices
    return relevant.gather(1, top).any(dim=1).float().mean().item()


@torch.no_grad()
def embed_images(
    model: ClipModel,
    images: Sequence[Image.Image],
    transform: ImageTransform,
    device: str,
    batch_size: int = 256,
) -> torch.Tensor:
    """Normalised image embeddings (float32, CPU) for PIL images."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([transform(im) for im in images[start : start + batch_size]]).to(device)
        with autocast(device):
            out.append(model.encode_image(batch, normalize=True).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def embed_texts(
    model: ClipModel, texts: Sequence[str], tokenizer: Tokenizer, device: str, batch_size: int = 512
) -> torch.Tensor:
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start : start + batch_size])).to(device)
        with autocast(device):
            out.append(encode_text(model, tokens, normalize=True).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def pair_recall(
    model: ClipModel,
    pairs: list[Pair],
    transform: ImageTransform,
    tokenizer: Tokenizer,
    device: str,
    batch_size: int = 256,
) -> Recall | None:
    """Recall over held-out ``pairs``; None when there are none.

    A pair's own partner is relevant, and so is any item whose caption is the very same text:
    generated or templated captions repeat, and retrieving an identical caption is not an error.
    """
    if not pairs:
        return None
    was_training = model.training
    model.eval()
    try:
        loader = torch.utils.data.DataLoader(
            PairDataset(pairs, transform), batch_size=batch_size, collate_fn=_keep_captions
        )
        image_features, text_features, captions = [], [], []
        for images, batch_captions in loader:
            if not batch_captions:
                continue
            tokens = tokenizer(batch_captions).to(device)
            with autocast(device):
                image_features.append(model.encode_image(images.to(device), normalize=True).float().cpu())
                text_features.append(encode_text(model, tokens, normalize=True).float().cpu())
            captions.extend(batch_captions)
    finally:
        model.train(was_training)
    if not captions:
        return None
    images_, texts_ = torch.cat(image_features), torch.cat(text_features)
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    caption_ids = torch.tensor([ids[c] for c in captions])
    same = caption_ids[:, None] == caption_ids[None, :]  # text i is relevant to image j
    sim = texts_ @ images_.T
    return Recall(
        text_to_image_at_1=recall_at(sim, same, 1),
        text_to_image_at_5=recall_at(sim, same, 5),
        image_to_text_at_1=recall_at(sim.T, same.T, 1),
        image_to_text_at_5=recall_at(sim.T, same.T, 5),
        pairs=len(captions),
    )


def _keep_captions(batch: list[Sample | None]) -> tuple[torch.Tensor, list[str]]:
    # Pairs whose image stopped decoding come back as None and drop out with their caption.
    kept = [item for item in batch if item is not None]
    if not kept:
        return torch.empty(0, 3, 1, 1), []
    images, captions = zip(*kept, strict=True)
    return torch.stack(images), list(captions)


def autocast(device: str) -> torch.autocast:
    """bf16 (or fp16) autocast on CUDA; a no-op on CPU, where fp32 is the fast path."""
    if str(device).startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)
