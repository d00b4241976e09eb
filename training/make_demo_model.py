"""Regenerate the shipped ``glimpse-demo`` checkpoint: generated shapes -> ``train()`` -> check.

    python -m glimpse.training.make_demo_model [--work DIR] [--out FILE]

Runs exactly what ``training/README.md`` documents: ``make_pairs`` then the same ``train()``
that ``glimpse train`` calls, then the shape-and-colour retrieval check the CI test applies.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from glimpse.core.models import DEMO_CHECKPOINT, TINY_MODEL

# The recipe of the shipped checkpoint (see training/README.md for its figures).
PAIRS = 10_000
DATA_SEED = 1
EPOCHS = 16
BATCH_SIZE = 128
LR = 1e-3
IMAGE_SIZE = 128


def make_demo_model(
    out: Annotated[Path, typer.Option(help="checkpoint to write")] = DEMO_CHECKPOINT,
    work: Annotated[
        Path | None, typer.Option(help="folder for the generated pairs; default: a temp dir")
    ] = None,
    pairs: Annotated[int, typer.Option(min=100)] = PAIRS,
    seed: Annotated[int, typer.Option(help="seed of the generated training pairs")] = DATA_SEED,
    epochs: Annotated[int, typer.Option(min=1)] = EPOCHS,
    batch_size: Annotated[int, typer.Option(min=2)] = BATCH_SIZE,
    lr: Annotated[float, typer.Option()] = LR,
    device: Annotated[str, typer.Option()] = "auto",
    resume: Annotated[bool, typer.Option(help="continue an interrupted run writing OUT")] = False,
) -> None:
    """Generate shape pairs, train glimpse-tiny from scratch on them, report retrieval quality."""
    logging.basicConfig(format="%(asctime)s %(message)s")
    logging.getLogger("glimpse").setLevel(logging.INFO)  # step and loss lines, not open_clip's chatter
    from glimpse.core.models import create_model
    from glimpse.training.benchmark import shape_colour_recall
    from glimpse.training.synthetic import make_pairs
    from glimpse.training.trainer import train

    with tempfile.TemporaryDirectory(prefix="glimpse-demo-") as tmp:
        folder = work or Path(tmp)
        # A pure function of (pairs, seed): regenerating gives a resumed run the same data.
        manifest = make_pairs(folder, pairs, seed, image_size=IMAGE_SIZE)
        typer.echo(f"training pairs: {manifest}")
        report = train(manifest, TINY_MODEL, None, epochs, batch_size, lr, out, resume, device)
    typer.echo(f"{report.steps} steps in {report.seconds / 60:.1f} min, final loss {report.final_loss:.4f}")
    typer.echo(f"held-out recall before: {report.recall_before}")
    typer.echo(f"held-out recall after:  {report.recall_after}")
    for name, model in (
        ("random init", create_model(TINY_MODEL)),
        ("trained", create_model(TINY_MODEL, str(out))),
    ):
        typer.echo(f"{name}: {shape_colour_recall(model, TINY_MODEL)}")
    typer.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    typer.run(make_demo_model)
