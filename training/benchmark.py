"""Does a model understand "a red circle"? Shape-and-colour retrieval on freshly generated images.

The bar the shipped ``glimpse-demo`` model must pass: for each query naming a colour and a shape,
a gallery image is relevant when it shows that shape in that colour (any size, place, background).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glimpse.core.models import ClipModel
from glimpse.training.clip import tokenizer_for, transforms_for
from glimpse.training.evaluate import embed_images, embed_texts, recall_at
from glimpse.training.synthetic import COLOURS, SHAPES, make_gallery

QUERY_TEMPLATES = ("a {colour} {shape}", "{colour} {shape}", "a photo of a {colour} {shape}")


@dataclass(frozen=True)
class ShapeColourRecall:
    recall_at_1: float
    recall_at_5: float
    precision_at_5: float  # share of the top 5 that are relevant, averaged over queries
    queries: int
    gallery: int

    def __str__(self) -> str:
        return (
            f"shape+colour text->image R@1 {self.recall_at_1:.3f} R@5 {self.recall_at_5:.3f} "
            f"P@5 {self.precision_at_5:.3f} ({self.queries} queries, {self.gallery} images)"
        )


@torch.no_grad()
def shape_colour_recall(
    model: ClipModel,
    model_name: str,
    *,
    gallery_size: int = 400,
    seed: int = 12345,
    templates: tuple[str, ...] = QUERY_TEMPLATES,
    device: str = "cpu",
) -> ShapeColourRecall:
    """Text->image retrieval over a generated gallery (``seed``), relevance = same shape and colour."""
    gallery = make_gallery(gallery_size, seed)
    _, eval_transform = transforms_for(model)
    model.eval()
    image_features = embed_images(model, [im for im, _ in gallery], eval_transform, device)
    present = {(scene.colour, scene.shape) for _, scene in gallery}
    # Only combinations the gallery holds: a query with nothing to find measures nothing.
    targets = [(c, s) for c in COLOURS for s in SHAPES if (c, s) in present]
    queries = [(t.format(colour=c, shape=s), (c, s)) for c, s in targets for t in templates]
    text_features = embed_texts(model, [q for q, _ in queries], tokenizer_for(model_name), device)
    relevant = torch.tensor(
        [[(scene.colour, scene.shape) == target for _, scene in gallery] for _, target in queries]
    )
    similarity = text_features @ image_features.T
    top5 = similarity.topk(5, dim=1).indices
    return ShapeColourRecall(
        recall_at_1=recall_at(similarity, relevant, 1),
        recall_at_5=recall_at(similarity, relevant, 5),
        precision_at_5=relevant.gather(1, top5).float().mean().item(),
        queries=len(queries),
        gallery=len(gallery),
    )
