"""The pieces of an open_clip model training needs: tokenizer, transforms, fast text encoding, loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from glimpse.core.models import ClipModel, register_configs, resolve
from glimpse.training.data import ImageTransform


def tokenizer_for(model_name: str) -> Callable[[list[str]], torch.Tensor]:
    """The tokenizer open_clip pairs with the model's architecture."""
    import open_clip

    register_configs()
    arch, _ = resolve(model_name, None)
    return open_clip.get_tokenizer(arch)


def transforms_for(model: ClipModel) -> tuple[ImageTransform, ImageTransform]:
    """(train, eval) image transforms from the model's own size, mean and std.

    Training adds open_clip's light augmentation (random resized crop, scale 0.9-1, no flip: a
    flip would contradict captions that say "on the left").
    """
    from open_clip.model import get_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(**get_model_preprocess_cfg(model))
    return image_transform_v2(cfg, is_train=True), image_transform_v2(cfg, is_train=False)


def image_size_of(model: ClipModel) -> int:
    from open_clip.model import get_model_preprocess_cfg

    size = get_model_preprocess_cfg(model).get("size", 224)
    return max(size) if isinstance(size, (tuple, list)) else int(size)


def _can_trim(model: ClipModel) -> bool:
    # The standard CLIP text tower: causal mask and pooling at the EOT token (the largest id).
    return (
        all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final"))
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", "argmax") == "argmax"
        and getattr(model, "text_projection", None) is not None
    )


def encode_text(model: ClipModel, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """``model.encode_text`` on the context trimmed to the longest caption in the batch.

    With causal attention, padding after the EOT token cannot change the EOT token's features,
    so cutting it off gives the same embedding for a fraction of the work (77 -> ~15 tokens).
    Other text towers go through ``model.encode_text`` unchanged.
    """
    if not _can_trim(model):
        return model.encode_text(tokens, normalize=normalize)
    length = int((tokens != 0).sum(dim=1).max().item()) if tokens.numel() else 1
    tokens = tokens[:, :length]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    projection = model.text_projection
    x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
    return F.normalize(x, dim=-1) if normalize else x


def contrastive_loss(model: ClipModel, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over the batch's image-text similarities.

    Pairs whose captions are the very same text are positives of each other: the loss asks for
    the probability of *any* of them, -log(sum of their softmax probabilities). Short or
    templated captions ("a red circle") repeat within a batch, and plain CLIP would demand that
    "a red circle" pick out one red circle over another, which nothing in the text supports.
    With distinct captions this is exactly CLIP's loss.
    """
    image_features = model.encode_image(images, normalize=True)
    text_features = encode_text(model, tokens, normalize=True)
    logits = model.logit_scale.exp() * image_features.float() @ text_features.float().T
    bias = getattr(model, "logit_bias", None)
    if bias is not None:
        logits = logits + bias
    same_caption = (tokens[:, None, :] == tokens[None, :, :]).all(dim=-1)  # symmetric
    return (_multi_positive_ce(logits, same_caption) + _multi_positive_ce(logits.T, same_caption)) / 2


def _multi_positive_ce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(sum over the row's positives of softmax(row))."""
    positives_only = logits.masked_fill(~positive, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(positives_only, dim=1)).mean()
