"""The query service's oneDNN-packed text transformer: same vectors as open_clip, or not used."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from glimpse.core import text_tower
from glimpse.core.encoder import Encoder, encode_text_trimmed
from glimpse.core.models import create_model, register_configs
from glimpse.core.text_tower import pack_text_transformer

QUERIES = [
    "red",
    "a red summer dress",
    "a truck at a loading dock at night with its lights on",
    "a very long description of a product " * 20,  # past the 77-token context: truncated
]


@pytest.fixture(scope="module", params=["glimpse-tiny", "ViT-B-32"])
def model_and_tokenizer(request):
    """The tiny config and the real default architecture (random init: no hub; same structure)."""
    register_configs()
    torch.manual_seed(0)
    model = create_model(request.param, None, device="cpu")
    return model, open_clip.get_tokenizer(request.param)


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{len(q.split())}-words")
def test_packed_encoding_equals_open_clips_encode_text(model_and_tokenizer, query):
    model, tokenizer = model_and_tokenizer
    packed = pack_text_transformer(model)
    assert packed is not None, "a float32 open_clip model on the CPU is packed"
    tokens = tokenizer([query])
    with torch.inference_mode():
        stock = model.encode_text(tokens)
        fast = encode_text_trimmed(model, tokens, packed)
    assert fast.shape == stock.shape
    assert (fast - stock).abs().max().item() < 1e-5


def test_a_packed_batch_of_different_lengths_equals_open_clips(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tokens = tokenizer(QUERIES)
    with torch.inference_mode():
        fast = encode_text_trimmed(model, tokens, pack_text_transformer(model))
        assert (fast - model.encode_text(tokens)).abs().max().item() < 1e-5


def test_the_query_encoder_packs_on_request_only():
    packed = Encoder("glimpse-tiny", None, device="cpu", text_cache_size=0, pack_text=True)
    plain = Encoder("glimpse-tiny", None, device="cpu", text_cache_size=0)
    assert packed.text_packed and not plain.text_packed
    np.testing.assert_allclose(packed.encode_texts(QUERIES), plain.encode_texts(QUERIES), atol=1e-6)


def test_a_model_that_is_not_float32_keeps_its_own_transformer():
    register_configs()
    model = create_model("glimpse-tiny", None, device="cpu").double()
    assert pack_text_transformer(model) is None


def test_packed_layers_that_disagree_with_the_model_are_not_used(monkeypatch):
    # Stands in for a PyTorch whose private oneDNN ops changed meaning: the self-check must catch it.
    register_configs()
    model = create_model("glimpse-tiny", None, device="cpu")
    real_call = text_tower.PackedLinear.__call__
    monkeypatch.setattr(text_tower.PackedLinear, "__call__", lambda self, x: real_call(self, x) * 1.01)
    assert pack_text_transformer(model) is None


def test_packed_ops_that_fail_fall_back_to_the_models_transformer(monkeypatch):
    def missing_op(self, weight, bias):  # noqa: ANN001
        raise RuntimeError("No such operator mkldnn::_reorder_linear_weight")

    monkeypatch.setattr(text_tower.PackedLinear, "__init__", missing_op)
    encoder = Encoder("glimpse-tiny", None, device="cpu", text_cache_size=0, pack_text=True)
    assert not encoder.text_packed
    assert encoder.encode_texts(["red"]).shape == (1, encoder.dim)
