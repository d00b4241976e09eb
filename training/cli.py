"""``glimpse train``: contrastive training from the command line (registered in the glimpse app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train_command(
    pairs: Annotated[
        Path, typer.Option("--pairs", help="CSV or JSONL with image/path and caption/text columns")
    ],
    model: Annotated[str, typer.Option("--model", help="open_clip name, glimpse-tiny or glimpse-demo")],
    out: Annotated[Path, typer.Option("--out", help="where to write the checkpoint (.safetensors)")],
    pretrained: Annotated[
        str | None, typer.Option("--pretrained", help="open_clip tag or local checkpoint; none: from scratch")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 64,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="peak learning rate")] = 5e-4,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0)] = 0.1,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", min=0, help="default: 5% of the run")
    ] = None,
    held_out: Annotated[
        float, typer.Option("--held-out", min=0.0, max=0.9, help="share kept for recall")
    ] = 0.05,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    save_every: Annotated[
        int, typer.Option("--save-every", min=1, help="steps between resumable saves")
    ] = 200,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue from OUT's saved training state")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")] = "auto",
    workers: Annotated[
        int | None, typer.Option("--workers", min=0, help="decode processes; default by cores")
    ] = None,
) -> None:
    """Train a CLIP model on (image, caption) pairs: fine-tune a pretrained one, or train from scratch."""
    # Imported here: `glimpse` starts (and its decode workers re-import it) without loading torch.
    from glimpse.core.models import ModelLoadError
    from glimpse.training.data import PairsFileError
    from glimpse.training.state import ResumeError
    from glimpse.training.trainer import train

    try:
        report = train(
            pairs, model, pretrained, epochs, batch_size, lr, out, resume, device,
            weight_decay=weight_decay, warmup_steps=warmup_steps, held_out=held_out, seed=seed,
            save_every=save_every, workers=workers,
        )  # fmt: skip
    except (PairsFileError, ResumeError, ModelLoadError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for problem in report.skipped:
        typer.echo(f"skipped {problem}", err=True)
    typer.echo(
        f"trained {report.steps} steps on {report.train_pairs} pairs"
        + (f" (resumed at step {report.resumed_from_step})" if report.resumed_from_step is not None else "")
        + f" in {report.seconds:.0f} s; {len(report.skipped)} pairs skipped"
    )
    if report.final_loss is not None:
        typer.echo(f"final loss {report.final_loss:.4f}")
    if report.recall_before and report.recall_after:
        typer.echo(f"held-out recall before: {report.recall_before}")
        typer.echo(f"held-out recall after:  {report.recall_after}")
    else:
        typer.echo("no held-out pairs: recall not measured (raise --held-out or add pairs)")
    typer.echo(f"wrote {report.out}")
