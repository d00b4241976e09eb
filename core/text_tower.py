"""The query path's text transformer on the CPU, with its weights pre-packed for oneDNN.

A short query multiplies a handful of token rows by every weight of the text tower, so on the CPU
its time goes to streaming the weights (151 MB for ViT-B-32), not to arithmetic. oneDNN's blocked
weight layout streams them in about a quarter less time than the row-major layout PyTorch's
default kernel reads (bench/query_latency.py --encoding-only). The result equals open_clip's own
``encode_text`` to float32 rounding (tests/search/api/test_api_text_encoding.py). The price is a
second copy of the text transformer's weights in memory, so only the query service asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from glimpse.core.models import ClipModel

log = logging.getLogger(__name__)

# oneDNN picks its weight layout for an expected number of rows; queries of 5-20 tokens, alone
# or micro-batched, sit around this (measured: 9, 16 and 32 give the same speed at 9 rows).
ROWS_HINT = 16


class PackedLinear:
    """``F.linear`` with the weight reordered once into oneDNN's layout."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        dense = weight.detach().float().contiguous()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(dense, ROWS_HINT)
        self.bias = None if bias is None else bias.detach().float().contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


class PackedBlock:
    """open_clip's ``ResidualAttentionBlock`` (self-attention only) over packed linear layers.

    Norms, layer scales and the activation are the block's own modules, called as they are.
    """

    def __init__(self, block: ClipModel) -> None:
        attn = block.attn
        self.ln_1, self.ls_1, self.ln_2, self.ls_2 = block.ln_1, block.ls_1, block.ln_2, block.ls_2
        self.heads = attn.num_heads
        self.in_proj = PackedLinear(attn.in_proj_weight, attn.in_proj_bias)
        self.out_proj = PackedLinear(attn.out_proj.weight, attn.out_proj.bias)
        self.mlp: list[Callable[[torch.Tensor], torch.Tensor]] = [
            PackedLinear(m.weight, m.bias) if isinstance(m, nn.Linear) else m for m in block.mlp
        ]

    def __call__(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.in_proj(self.ln_1(x)).view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, length, head width)
        mask = None if attn_mask is None else attn_mask.to(x.dtype)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.ls_1(self.out_proj(attended.transpose(1, 2).reshape(batch, length, width)))
        hidden = self.ln_2(x)
        for layer in self.mlp:
            hidden = layer(hidden)
        return x + self.ls_2(hidden)


class PackedTransformer:
    """Drop-in for ``model.transformer(x, attn_mask=...)`` on (batch, length, width) input."""

    def __init__(self, transformer: ClipModel) -> None:
        self.blocks = [PackedBlock(block) for block in transformer.resblocks]

    def __call__(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, attn_mask)
        return x


def _is_plain_self_attention_block(block: ClipModel) -> bool:
    attn = getattr(block, "attn", None)
    return (
        isinstance(attn, nn.MultiheadAttention)
        and attn._qkv_same_embed_dim
        and attn.bias_k is None
        and not attn.add_zero_attn
        and not hasattr(block, "ln_1_kv")
        and all(hasattr(block, name) for name in ("ln_1", "ls_1", "ln_2", "ls_2"))
        and isinstance(getattr(block, "mlp", None), nn.Sequential)
    )


def pack_text_transformer(model: ClipModel) -> PackedTransformer | None:
    """A packed copy of ``model.transformer``, or None where it cannot be used.

    None when the model is not on the CPU in float32, this PyTorch has no oneDNN, or the blocks are
    not open_clip's plain self-attention blocks; the caller then keeps the model's own transformer.
    Before it is returned, the first block is checked against the model's own on random input, so a
    PyTorch whose private oneDNN ops changed falls back instead of returning wrong vectors.
    """
    transformer = getattr(model, "transformer", None)
    blocks = list(getattr(transformer, "resblocks", []))
    param = next(model.parameters(), None)
    if (
        not blocks
        or param is None
        or param.device.type != "cpu"
        or param.dtype != torch.float32
        or not torch.backends.mkldnn.is_available()
        or not all(_is_plain_self_attention_block(b) for b in blocks)
    ):
        return None
    try:
        packed = PackedTransformer(transformer)
        if not _first_block_agrees(blocks[0], packed.blocks[0]):
            log.warning("oneDNN's packed text layers disagree with the model's; using the model's own")
            return None
    except (RuntimeError, AttributeError) as exc:  # a PyTorch without these private ops
        log.warning("cannot pack the text tower for oneDNN (%s); using the model's own", exc)
        return None
    return packed


@torch.inference_mode()
def _first_block_agrees(block: ClipModel, packed: PackedBlock) -> bool:
    width = block.ln_1.normalized_shape[0]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, width, generator=generator)
    mask = torch.full((7, 7), float("-inf")).triu(1)
    if block.attn.batch_first:
        own = block(x, attn_mask=mask)
    else:  # such a block reads (length, batch, width)
        own = block(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
    return torch.allclose(own, packed(x, mask), rtol=1e-4, atol=1e-5)
