"""`glimpse train` through typer, as the glimpse app registers it."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.testing import CliRunner

from glimpse.core.models import create_model
from glimpse.training.cli import train_command

app = typer.Typer()
app.command("train")(train_command)
app.command("other")(lambda: None)  # with two commands, typer keeps the "train" sub-command name
runner = CliRunner()


def test_train_command_writes_a_loadable_checkpoint_and_resumes_it(shape_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck.safetensors"
    common = ["train", "--pairs", str(shape_pairs), "--model", "glimpse-tiny", "--out", str(out),
              "--batch-size", "8", "--device", "cpu", "--workers", "0"]  # fmt: skip

    first = runner.invoke(app, [*common, "--epochs", "1"])

    assert first.exit_code == 0, first.output
    assert "held-out recall before: text->image R@1" in first.output
    assert f"wrote {out}" in first.output
    create_model("glimpse-tiny", pretrained=str(out))
    steps = int(re.search(r"trained (\d+) steps", first.output).group(1))

    more = runner.invoke(app, [*common, "--epochs", "2", "--resume"])

    assert more.exit_code == 0, more.output
    assert f"trained {2 * steps} steps" in more.output
    assert f"(resumed at step {steps})" in more.output


def test_train_command_reports_a_missing_pairs_file_without_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "--pairs",
            str(tmp_path / "none.csv"),
            "--model",
            "glimpse-tiny",
            "--out",
            str(tmp_path / "x.safetensors"),
        ],
    )
    assert result.exit_code == 2
    assert "none.csv: pairs file not found" in result.output
