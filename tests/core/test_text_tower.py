"""When the query service's oneDNN-packed text transformer is used, and when it is not.

Its vectors are checked against open_clip's ``encode_text`` in tests/search/api/test_api_text_encoding.py.
"""

from __future__ import annotations

import numpy as np

from glimpse.core import text_tower
from glimpse.core.encoder import Encoder
from glimpse.core.models import create_model, register_configs
from glimpse.core.text_tower import pack_text_transformer

QUERIES = ["red", "a red summer dress", "a truck at a loading dock at night with its lights on"]


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
    def missing_op(self, weight, bias):
        raise RuntimeError("No such operator mkldnn::_reorder_linear_weight")

    monkeypatch.setattr(text_tower.PackedLinear, "__init__", missing_op)
    encoder = Encoder("glimpse-tiny", None, device="cpu", text_cache_size=0, pack_text=True)
    assert not encoder.text_packed
    assert encoder.encode_texts(["red"]).shape == (1, encoder.dim)
