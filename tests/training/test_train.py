"""train(): checkpoints that load like any model, resumable state, held-out recall, bad pairs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glimpse.core.models import create_model
from glimpse.training.state import ResumeError, read_state_meta, state_path
from glimpse.training.trainer import TrainReport, train

TINY = {
    "model": "glimpse-tiny",
    "epochs": 2,
    "batch_size": 8,
    "lr": 1e-3,
    "device": "cpu",
    "progress": False,
    "workers": 0,
}


def _train(pairs: Path, out: Path, **overrides) -> TrainReport:
    return train(pairs, out=out, **(TINY | overrides))


def test_checkpoint_written_by_train_loads_with_create_model(shape_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.safetensors"
    report = _train(shape_pairs, out)

    loaded = create_model("glimpse-tiny", pretrained=str(out))
    untrained = create_model("glimpse-tiny")
    trained_fp32 = {
        k.removeprefix("model."): v for k, v in load_file(state_path(out)).items() if k.startswith("model.")
    }
    for name, param in loaded.state_dict().items():
        # The shipped file is fp16: equal to the trained weights up to half-precision rounding.
        assert torch.equal(param, trained_fp32[name].half().float()), name
    assert not torch.equal(loaded.visual.conv1.weight, untrained.visual.conv1.weight)
    assert report.steps == 2 * (report.train_pairs // 8)
    assert report.recall_before is not None and report.recall_after is not None
    assert report.held_out_pairs == report.recall_after.pairs > 0


def test_resume_continues_from_the_step_and_optimizer_state_it_stopped_at(
    shape_pairs: Path, tmp_path: Path
) -> None:
    straight = _train(shape_pairs, tmp_path / "straight.safetensors")

    interrupted = tmp_path / "resumed.safetensors"

    def stop_after_three(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(shape_pairs, interrupted, on_step=stop_after_three)
    assert read_state_meta(state_path(interrupted))["step"] == 3
    resumed = _train(shape_pairs, interrupted, resume=True)

    assert resumed.resumed_from_step == 3
    assert resumed.steps == straight.steps
    # Same schedule, same batches, same Adam moments: the resumed run ends where the straight one did.
    # A reset optimizer or a restarted step counter would leave different weights.
    a, b = load_file(state_path(tmp_path / "straight.safetensors")), load_file(state_path(interrupted))
    for key in a:
        if key.startswith(("model.", "optimizer.")):
            assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_resume_refuses_the_state_of_a_run_with_other_settings(shape_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck.safetensors"
    _train(shape_pairs, out, epochs=1)
    with pytest.raises(ResumeError, match="batch_size"):
        _train(shape_pairs, out, resume=True, batch_size=4)


def test_resume_without_a_saved_state_says_where_it_looked(shape_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "never-trained.safetensors"
    with pytest.raises(ResumeError, match=r"never-trained\.state\.safetensors"):
        _train(shape_pairs, out, resume=True)


def test_resume_after_the_last_step_trains_no_further(shape_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "done.safetensors"
    first = _train(shape_pairs, out, epochs=1)
    before = out.read_bytes()
    again = _train(shape_pairs, out, epochs=1, resume=True)
    assert again.steps == first.steps and again.final_loss is None
    assert out.read_bytes() == before


def test_training_state_holds_no_pickle_only_safetensors_and_json(shape_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck.safetensors"
    _train(shape_pairs, out, epochs=1)
    meta = read_state_meta(state_path(out))
    assert json.loads(json.dumps(meta)) == meta
    assert meta["settings"]["model"] == "glimpse-tiny"
    tensors = load_file(state_path(out))
    assert any(k.endswith(".exp_avg_sq") for k in tensors)  # Adam's second moments travel too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors", "ck.state.safetensors"]


def test_bad_pairs_are_reported_and_skipped(shape_pairs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    shutil.copytree(shape_pairs.parent, folder)
    rows = list(csv.DictReader((folder / "pairs.csv").open()))
    (folder / "images" / "garbage.jpg").write_bytes(b"this is not a jpeg")
    whole = (folder / rows[0]["image"]).read_bytes()
    (folder / "images" / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    rows[1]["caption"] = "   "
    rows[2]["image"] = "images/missing.jpg"
    rows[3]["image"] = "images/garbage.jpg"
    rows[4]["image"] = "images/truncated.jpg"
    with (folder / "pairs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    report = _train(folder / "pairs.csv", tmp_path / "ck.safetensors", epochs=1)

    reasons = {(bad.source, bad.reason.split(" (")[0]) for bad in report.skipped}
    assert reasons == {
        ("pairs.csv:3", "empty caption"),
        ("pairs.csv:4", "image file not found"),
        ("pairs.csv:5", "image does not decode"),
        ("pairs.csv:6", "image does not decode"),
    }
    assert report.train_pairs + report.held_out_pairs == len(rows) - 4


def test_training_on_a_file_of_only_bad_pairs_fails_naming_the_file(tmp_path: Path) -> None:
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text(json.dumps({"path": "nowhere.png", "text": "a red circle"}) + "\n")
    with pytest.raises(ValueError, match=r"pairs\.jsonl: no usable training pairs"):
        _train(manifest, tmp_path / "ck.safetensors")
