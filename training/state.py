"""Resumable training state in one safetensors file: weights, optimizer tensors, RNG; scalars as JSON.

No pickle anywhere: tensors go in the safetensors body, everything else (step, epoch, the run's
settings, the optimizer's hyper-parameters) is JSON in the file's metadata. One file, written
atomically, so weights and step counter can never disagree after a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from glimpse.core.models import ClipModel

_META_KEY = "glimpse_training_state"
FORMAT_VERSION = 1


class ResumeError(RuntimeError):
    """A saved state exists but cannot continue this run; the message says why."""


@dataclass
class TrainingState:
    step: int  # optimizer steps done
    epoch: int  # epoch the next step belongs to
    settings: dict[str, Any]  # the run's settings, to refuse resuming a different run
    history: list[dict[str, Any]] = field(default_factory=list)  # loss log, carried across resumes


def state_path(out: Path) -> Path:
    """Where the resumable state of a run writing ``out`` lives: ``NAME.state.safetensors``."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".state.safetensors")


def save_state(path: Path, state: TrainingState, model: ClipModel, optimizer: torch.optim.Optimizer) -> None:
    from safetensors.torch import save_file

    tensors = {
        f"model.{k}": _cpu(v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()
    }
    optim = optimizer.state_dict()
    optim_scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in optim["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{param_id}.{key}"] = _cpu(value)
            else:
                optim_scalars.setdefault(str(param_id), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "version": FORMAT_VERSION,
        "step": state.step,
        "epoch": state.epoch,
        "settings": state.settings,
        "history": state.history,
        "optimizer_param_groups": optim["param_groups"],
        "optimizer_scalars": optim_scalars,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})
    tmp.replace(path)


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous().cpu()


def read_state_meta(path: Path) -> dict[str, Any]:
    """The JSON part of a saved state (cheap: the tensors are not read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
    except Exception as exc:
        raise ResumeError(f"{path}: not a readable training state ({exc})") from exc
    if raw is None:
        raise ResumeError(f"{path}: no training state in this file")
    meta = json.loads(raw)
    if meta.get("version") != FORMAT_VERSION:
        raise ResumeError(f"{path}: training state version {meta.get('version')}, expected {FORMAT_VERSION}")
    return meta


def load_state(path: Path, model: ClipModel, optimizer: torch.optim.Optimizer) -> TrainingState:
    """Restore weights, optimizer and RNG from ``path`` into ``model`` and ``optimizer``."""
    from safetensors.torch import load_file

    meta = read_state_meta(path)
    tensors = load_file(str(path))
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=True)
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            per_param.setdefault(int(param_id), {})[name] = value
    for param_id, scalars in meta["optimizer_scalars"].items():
        per_param.setdefault(int(param_id), {}).update(scalars)
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["optimizer_param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return TrainingState(
        step=meta["step"], epoch=meta["epoch"], settings=meta["settings"], history=meta.get("history", [])
    )
