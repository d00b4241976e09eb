"""Contrastive training of an open_clip model on (image, caption) pairs.

One code path for both uses: fine-tuning a pretrained CLIP on a shop's captioned catalogue, and
training ``glimpse-tiny`` from scratch on generated shapes (the shipped ``glimpse-demo`` model).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from glimpse.core.models import ClipModel, create_model, save_checkpoint
from glimpse.core.settings import resolve_device
from glimpse.training.clip import contrastive_loss, image_size_of, tokenizer_for, transforms_for
from glimpse.training.data import (
    BadPair,
    Collate,
    ImageTransform,
    Pair,
    PairDataset,
    Tokenizer,
    make_collate,
    read_pairs,
    split_holdout,
)
from glimpse.training.evaluate import Recall, autocast, pair_recall
from glimpse.training.state import (
    ResumeError,
    TrainingState,
    load_state,
    read_state_meta,
    save_state,
    state_path,
)

log = logging.getLogger(__name__)

# Settings that must match for a saved state to be continued (epochs may grow, lr may not change).
# Recall is measured on at most this many held-out pairs: the similarity matrix grows as its square.
MAX_EVAL_PAIRS = 5000
_RESUME_KEYS = ("model", "pretrained", "batch_size", "lr", "seed", "train_pairs", "weight_decay")


@dataclass
class TrainReport:
    out: Path
    steps: int  # optimizer steps done in total, including those before a resume
    epochs: int
    resumed_from_step: int | None
    train_pairs: int
    held_out_pairs: int
    skipped: list[BadPair]
    recall_before: Recall | None
    recall_after: Recall | None
    final_loss: float | None
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # {"step", "epoch", "loss", "lr"}


@dataclass(frozen=True)
class Schedule:
    """Linear warmup to ``lr`` then cosine decay to zero at ``total`` steps."""

    lr: float
    warmup: int
    total: int

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * self.lr * (1 + math.cos(math.pi * min(1.0, progress)))


def train(
    pairs: Path,
    model: str,
    pretrained: str | None = None,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 5e-4,
    out: Path = Path("checkpoint.safetensors"),
    resume: bool = False,
    device: str = "auto",
    *,
    weight_decay: float = 0.1,
    warmup_steps: int | None = None,
    held_out: float = 0.05,
    seed: int = 0,
    save_every: int = 200,
    max_grad_norm: float = 1.0,
    workers: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainReport:
    """Train ``model`` contrastively on the pairs manifest and write ``out`` (fp16 safetensors).

    The resumable state (fp32 weights, optimizer, step) is saved next to ``out`` every
    ``save_every`` steps, at the end, and on Ctrl-C; ``resume=True`` continues from it.
    ``warmup_steps`` defaults to 5% of the run. ``on_step(step, loss)`` is called after each step.
    """
    started = time.monotonic()
    out, device = Path(out), resolve_device(device)
    torch.manual_seed(seed)
    all_pairs, skipped = read_pairs(pairs)
    train_pairs, held_pairs = split_holdout(all_pairs, held_out, base=Path(pairs).parent)
    if not train_pairs:
        raise ValueError(f"{pairs}: no usable training pairs ({len(skipped)} skipped)")

    net = create_model(model, pretrained, device=device)
    tokenizer = tokenizer_for(model)
    train_transform, eval_transform = transforms_for(net)
    steps_per_epoch = max(1, len(train_pairs) // batch_size)  # the remainder is dropped each epoch
    total_steps = epochs * steps_per_epoch
    warmup = warmup_steps if warmup_steps is not None else max(1, total_steps // 20)
    run = _Run(
        net=net,
        optimizer=_optimizer(net, lr, weight_decay),
        schedule=Schedule(lr=lr, warmup=min(warmup, total_steps), total=total_steps),
        scaler=_grad_scaler(device),
        loader=_loader_args(train_pairs, train_transform, tokenizer, net, device, workers),
        device=device, out=out, seed=seed, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
        save_every=save_every, max_grad_norm=max_grad_norm,
        state=TrainingState(step=0, epoch=0, settings={
            "model": model, "pretrained": pretrained, "batch_size": batch_size, "lr": lr, "seed": seed,
            "train_pairs": len(train_pairs), "weight_decay": weight_decay, "epochs": epochs,
            "pairs_file": str(pairs),
        }),
    )  # fmt: skip
    resumed_from = _resume(run) if resume else None

    eval_pairs = held_pairs[:MAX_EVAL_PAIRS]
    recall_before = pair_recall(net, eval_pairs, eval_transform, tokenizer, device)
    if recall_before:
        log.info("held-out recall before training: %s", recall_before)
    final_loss = _train_loop(run, progress, on_step)
    recall_after = pair_recall(net.eval(), eval_pairs, eval_transform, tokenizer, device)
    return TrainReport(
        out=out,
        steps=run.state.step,
        epochs=epochs,
        resumed_from_step=resumed_from,
        train_pairs=len(train_pairs),
        held_out_pairs=len(held_pairs),
        skipped=skipped,
        recall_before=recall_before,
        recall_after=recall_after,
        final_loss=final_loss,
        seconds=time.monotonic() - started,
        history=run.state.history,
    )


@dataclass
class _Run:
    """Everything one training run carries from step to step."""

    net: ClipModel
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler | None
    loader: _LoaderArgs
    device: str
    out: Path
    seed: int
    batch_size: int
    steps_per_epoch: int
    save_every: int
    max_grad_norm: float
    state: TrainingState


def _train_loop(run: _Run, progress: bool, on_step: Callable[[int, float], None] | None) -> float | None:
    """Train until the schedule's last step; save at the end (and on Ctrl-C). Returns the last loss."""
    state, total = run.state, run.schedule.total
    final_loss = None
    run.net.train()
    try:
        with _ProgressBar(progress, total, state.step) as advance:
            while state.step < total:
                batches = _epoch_batches(run.loader, run.seed, state, run.steps_per_epoch, run.batch_size)
                for images, tokens in batches:
                    if len(images) < 2:
                        continue  # images that stopped decoding left no negatives to contrast with
                    final_loss = _step(run, images, tokens)
                    advance(final_loss, state.epoch)
                    if on_step:
                        on_step(state.step, final_loss)
                    if state.step % run.save_every == 0 and state.step < total:
                        _save(run)
                    if state.step >= total:
                        break
                else:
                    state.epoch += 1
    except KeyboardInterrupt:
        _save(run)
        log.warning("interrupted at step %d; state saved, continue with --resume", state.step)
        raise
    state.epoch = max(state.epoch, math.ceil(state.step / run.steps_per_epoch))
    _save(run)
    return final_loss


def _step(run: _Run, images: torch.Tensor, tokens: torch.Tensor) -> float:
    state = run.state
    lr = run.schedule(state.step)
    loss = training_step(
        run.net, run.optimizer, images.to(run.device, non_blocking=True),
        tokens.to(run.device, non_blocking=True), lr, run.scaler, run.max_grad_norm,
    )  # fmt: skip
    state.step += 1
    if state.step % 10 == 0 or state.step == run.schedule.total:
        state.history.append({"step": state.step, "epoch": state.epoch, "loss": round(loss, 5), "lr": lr})
    if state.step % 50 == 0:
        log.info("step %d/%d epoch %d loss %.4f", state.step, run.schedule.total, state.epoch + 1, loss)
    return loss


def training_step(
    model: ClipModel,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    tokens: torch.Tensor,
    lr: float,
    scaler: torch.amp.GradScaler | None = None,
    max_grad_norm: float | None = 1.0,
) -> float:
    """One optimizer step on one batch; returns the batch's loss before the step."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(str(images.device)):
        loss = contrastive_loss(model, images, tokens)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    with torch.no_grad():
        # As in CLIP: a temperature above 100 makes training unstable.
        model.logit_scale.clamp_(0, math.log(100))
    return loss.item()


def _optimizer(model: ClipModel, lr: float, weight_decay: float) -> torch.optim.AdamW:
    # No weight decay on gains, biases, norms and the temperature (as open_clip does).
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exempt else decay).append(param)
    return torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def _grad_scaler(device: str) -> torch.amp.GradScaler | None:
    # Only fp16 autocast needs loss scaling; bf16 and fp32 do not.
    if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        return torch.amp.GradScaler("cuda")
    return None


def _resume(run: _Run) -> int:
    """Load the saved state of ``run.out`` into the run; returns the step it continues from."""
    path = state_path(run.out)
    if not path.is_file():
        raise ResumeError(f"--resume: no saved training state at {path}; start without --resume")
    saved = read_state_meta(path)["settings"]
    settings = run.state.settings
    changed = [k for k in _RESUME_KEYS if saved.get(k) != settings.get(k)]
    if changed:
        details = ", ".join(f"{k}: saved {saved.get(k)!r}, now {settings.get(k)!r}" for k in changed)
        raise ResumeError(f"--resume: {path} belongs to a different run ({details})")
    run.state = load_state(path, run.net, run.optimizer)
    run.state.settings = settings  # e.g. a raised --epochs
    log.info("resuming from step %d (epoch %d) of %s", run.state.step, run.state.epoch, path)
    return run.state.step


def _save(run: _Run) -> None:
    save_state(state_path(run.out), run.state, run.net, run.optimizer)
    save_checkpoint(run.net, run.out)


@dataclass(frozen=True)
class _LoaderArgs:
    dataset: PairDataset
    collate: Collate
    workers: int
    pin_memory: bool


def _loader_args(
    pairs: list[Pair],
    transform: ImageTransform,
    tokenizer: Tokenizer,
    model: ClipModel,
    device: str,
    workers: int | None,
) -> _LoaderArgs:
    if workers is None:
        # Decoding overlaps the model only when there are cores to spare for it.
        cores = os.cpu_count() or 1
        workers = 0 if cores <= 2 else min(8, cores // 2)
    dataset = PairDataset(pairs, transform, decode_side=2 * image_size_of(model))
    return _LoaderArgs(dataset, make_collate(tokenizer), workers, device.startswith("cuda"))


def _epoch_batches(
    args: _LoaderArgs, seed: int, state: TrainingState, steps_per_epoch: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of ``state.epoch`` still to do: the epoch's order is fixed by (seed, epoch),
    so a resumed run skips exactly the batches it had already trained on."""
    n = len(args.dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + state.epoch)).tolist()
    size = min(batch_size, n)
    batches = [order[i * size : (i + 1) * size] for i in range(steps_per_epoch)]
    done = state.step - state.epoch * steps_per_epoch
    loader = torch.utils.data.DataLoader(
        args.dataset,
        batch_sampler=batches[max(0, done) :],
        collate_fn=args.collate,
        num_workers=args.workers,
        pin_memory=args.pin_memory,
        # Its own generator: creating the loader must not draw from the global RNG, which
        # drives augmentation and is saved with the state (resume repeats the same crops).
        generator=torch.Generator().manual_seed(seed * 100_003 + state.epoch),
    )
    yield from loader


class _ProgressBar:
    """A rich progress bar showing step, epoch and loss; silent when ``enabled`` is False."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.enabled, self.total, self.done = enabled, total, done

    def __enter__(self) -> Callable[[float, int], None]:
        if not self.enabled:
            return lambda loss, epoch: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
        )  # fmt: skip
        self.progress.start()
        task = self.progress.add_task("train", total=self.total, completed=self.done, epoch=1, loss="-")

        def advance(loss: float, epoch: int) -> None:
            self.progress.update(task, advance=1, loss=f"{loss:.4f}", epoch=epoch + 1)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()
