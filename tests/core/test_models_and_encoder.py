"""Model loading (local checkpoints, safe formats, clear errors) and the encoder's outputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from glimpse.core.encoder import Encoder, encode_text_trimmed
from glimpse.core.models import ModelLoadError, create_model, save_checkpoint


@pytest.fixture(scope="module")
def tiny():
    return create_model("glimpse-tiny")


def test_random_init_is_the_same_on_every_load(tiny):
    again = create_model("glimpse-tiny")
    for (name, a), (_, b) in zip(tiny.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_loads_a_local_safetensors_checkpoint(tmp_path, tiny):
    path = tmp_path / "w.safetensors"
    with torch.no_grad():
        tiny.logit_scale.fill_(3.0)
    save_checkpoint(tiny, path)
    loaded = create_model("glimpse-tiny", str(path))
    assert float(loaded.logit_scale) == pytest.approx(3.0, abs=1e-2)


def test_loads_a_plain_torch_state_dict_with_weights_only(tmp_path, tiny):
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny.state_dict().items()}}, path)
    loaded = create_model("glimpse-tiny", str(path))
    assert torch.equal(loaded.visual.conv1.weight, tiny.visual.conv1.weight)


def test_refuses_a_pickle_that_is_not_a_plain_state_dict(tmp_path):
    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"x": object()}))
    with pytest.raises(ModelLoadError, match="weights-only"):
        create_model("glimpse-tiny", str(path))


def test_a_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"foo": torch.zeros(2)}, str(path))
    with pytest.raises(ModelLoadError, match="does not match"):
        create_model("glimpse-tiny", str(path))


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="unknown model"):
        create_model("no-such-model")


def test_failed_download_says_how_to_pass_a_local_file(monkeypatch):
    # No model hub is reachable here; HF_HUB_OFFLINE makes the failure immediate, as for an
    # offline user. The message must point at --pretrained FILE, not end in a stack trace.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="--pretrained /path/to/weights"):
        create_model("RN50", "openai")


def test_outputs_are_unit_length_float32(tiny_encoder):
    imgs = [Image.new("RGB", (80, 60), c) for c in ("red", "blue")]
    vi = tiny_encoder.encode_images(imgs)
    vt = tiny_encoder.encode_texts(["a red square", "a blue square"])
    for v in (vi, vt):
        assert v.dtype == np.float32 and v.shape == (2, tiny_encoder.dim)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "texts",
    [
        ["red"],
        ["a photo of a red circle on a white background"],
        ["a", "much longer query with many words in it than the other"],
    ],
)
def test_trimmed_text_encoding_equals_open_clips_encode_text(tiny_encoder, texts):
    model = tiny_encoder.model
    tokens = tiny_encoder._tokenizer(texts)
    with torch.no_grad():
        stock = model.encode_text(tokens)
        trimmed = encode_text_trimmed(model, tokens)
    assert (stock - trimmed).abs().max().item() < 1e-5


def test_preprocessing_without_torch_matches_open_clips_transform(tiny_encoder):
    cfg = tiny_encoder.preprocess_config()
    rng = np.random.default_rng(0)
    for w, h in [(640, 480), (200, 900), (33, 70)]:
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        assert np.abs(cfg.to_array(img) - cfg.transform()(img).numpy()).max() < 1e-5


def test_repeated_queries_come_from_the_cache():
    enc = Encoder("glimpse-tiny", None, text_cache_size=2).load()
    first = enc.encode_texts(["cat"])
    enc._encode_texts_uncached = None  # any further model call would now fail
    np.testing.assert_array_equal(enc.encode_texts(["cat"]), first)
