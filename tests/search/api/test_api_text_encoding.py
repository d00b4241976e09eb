"""The query path's text encoding: trimmed to the real token length, through the model's own or
the oneDNN-packed transformer (identical to open_clip's own ``encode_text`` either way), and cached
in a bounded LRU."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from fastapi.testclient import TestClient

from api_fixtures import api_settings, index_into
from conftest import save_image
from glimpse.core.encoder import Encoder, encode_text_trimmed
from glimpse.core.models import RANDOM_INIT, create_model, register_configs
from glimpse.core.text_tower import pack_text_transformer
from glimpse.search.api.app import create_app

QUERIES = [
    "red",
    "a red summer dress",
    "a truck at a loading dock at night with its lights on",  # ~13 tokens
    "sneakers " * 30,  # ~31 tokens
    "a very long description of a product " * 20,  # past the 77-token context: truncated
]


@pytest.fixture(scope="module", params=["glimpse-tiny", "ViT-B-32"])
def model_and_tokenizer(request):
    """The tiny config and the real default architecture (random init: no hub; same structure)."""
    register_configs()
    torch.manual_seed(0)
    model = create_model(request.param, RANDOM_INIT, device="cpu")
    return model, open_clip.get_tokenizer(request.param)


@pytest.fixture(scope="module")
def towers(model_and_tokenizer) -> dict:
    """What the trimmed pass runs the tokens through: the model's own transformer (None), or the
    oneDNN-packed copy the API uses on the CPU (core/text_tower.py)."""
    packed = pack_text_transformer(model_and_tokenizer[0])
    assert packed is not None, "a float32 open_clip model on the CPU is packed"
    return {"own": None, "packed": packed}


@pytest.mark.parametrize("tower", ["own", "packed"])
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{len(q.split())}-words")
def test_trimmed_encoding_equals_open_clips_encode_text(model_and_tokenizer, towers, query, tower):
    model, tokenizer = model_and_tokenizer
    tokens = tokenizer([query])
    with torch.inference_mode():
        stock = model.encode_text(tokens)
        trimmed = encode_text_trimmed(model, tokens, towers[tower])
    assert trimmed.shape == stock.shape
    assert (trimmed - stock).abs().max().item() < 1e-5


@pytest.mark.parametrize("tower", ["own", "packed"])
def test_a_batch_of_different_lengths_trims_to_the_longest(model_and_tokenizer, towers, tower):
    model, tokenizer = model_and_tokenizer
    tokens = tokenizer(QUERIES)
    with torch.inference_mode():
        trimmed = encode_text_trimmed(model, tokens, towers[tower])
        assert (trimmed - model.encode_text(tokens)).abs().max().item() < 1e-5


def test_the_text_cache_is_a_bounded_lru(tiny_encoder):
    encoder = Encoder("glimpse-tiny", None, device="cpu", text_cache_size=2).load()
    calls: list[list[str]] = []
    real = encoder._encode_texts_uncached

    def counting(texts):
        calls.append(list(texts))
        return real(texts)

    encoder._encode_texts_uncached = counting  # type: ignore[method-assign]
    a = encoder.encode_texts(["alpha"])[0]
    encoder.encode_texts(["beta"])
    assert encoder.encode_texts(["  alpha "])[0] is not None and calls == [
        ["alpha"],
        ["beta"],
    ]  # hit (stripped)
    encoder.encode_texts(["gamma"])  # evicts beta, the least recently used
    assert encoder.cached_text("beta") is None and encoder.cached_text("alpha") is not None
    encoder.encode_texts(["beta"])
    assert calls == [["alpha"], ["beta"], ["gamma"], ["beta"]]
    assert torch.allclose(torch.from_numpy(encoder.cached_text("alpha")), torch.from_numpy(a))
    assert torch.allclose(
        torch.from_numpy(encoder.encode_texts(["alpha"])[0]),
        torch.from_numpy(tiny_encoder.encode_texts(["alpha"])[0]),
        atol=1e-6,
    )


def test_a_zero_size_cache_caches_nothing():
    encoder = Encoder("glimpse-tiny", None, device="cpu", text_cache_size=0).load()
    encoder.encode_texts(["alpha"])
    assert encoder.cached_text("alpha") is None


@pytest.mark.parametrize("pack", [True, False])
def test_the_service_packs_the_text_tower_unless_told_not_to(tmp_path, tiny_encoder, pack):
    settings = api_settings(tmp_path / "library", None, pack_text_weights=pack)
    save_image(tmp_path / "media" / "red.jpg", "red")
    index_into(settings, tiny_encoder, tmp_path / "media")
    with TestClient(create_app(settings)) as client:
        assert client.app.state.service.embedder.encoder.text_packed is pack
        response = client.post("/v1/embed", json={"text": "a red summer dress"})
    assert response.status_code == 200, response.text
    expected = tiny_encoder.encode_texts(["a red summer dress"])[0]  # the model's own transformer
    assert np.abs(np.array(response.json()["vector"]) - expected).max() < 1e-5
