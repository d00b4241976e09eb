"""OpenCLIP model construction: the project's own configs, named models and safe weight loading.

Everything that builds a CLIP model goes through :func:`create_model`, so the indexer, the query
service and the trainer load a checkpoint exactly the same way a user does offline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # torch is imported where a model is built: the CLI and decode workers start without it
    import torch

# open_clip builds its towers as attributes of an nn.Module, and torch types every such attribute as
# `Tensor | Module`: code that reads them (model.visual, model.transformer, a block's attn...) sees
# the model, and its parts, as Any rather than pretend to a precision torch's stubs do not have.
ClipModel: TypeAlias = Any

CONFIG_DIR = Path(__file__).parent / "model_configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"

TINY_MODEL = "glimpse-tiny"
DEMO_MODEL = "glimpse-demo"
DEMO_CHECKPOINT = WEIGHTS_DIR / "glimpse-demo.safetensors"
# Seed for the random initialisation of models built without weights: tests get the same
# model, and so the same vectors, on every run.
INIT_SEED = 0

# Named models that are an architecture plus a checkpoint shipped in the package.
BUNDLED_MODELS: dict[str, tuple[str, Path]] = {DEMO_MODEL: (TINY_MODEL, DEMO_CHECKPOINT)}

_register_lock = threading.Lock()
_registered = False


class ModelLoadError(RuntimeError):
    """The model or its weights could not be loaded; the message says what to do about it."""


@dataclass(frozen=True)
class ModelRef:
    """What a library records about its model: the name and the pretrained tag or file."""

    name: str
    pretrained: str | None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.pretrained or 'random init'})"


def register_configs() -> None:
    """Make the project's model configs (``glimpse-tiny``) known to open_clip, once."""
    global _registered
    with _register_lock:
        if _registered:
            return
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def resolve(name: str, pretrained: str | None) -> tuple[str, str | None]:
    """Map a user-facing model name to (open_clip architecture, pretrained tag or file)."""
    if name in BUNDLED_MODELS:
        arch, checkpoint = BUNDLED_MODELS[name]
        if pretrained in (None, "", "bundled", str(checkpoint)):
            return arch, str(checkpoint)
        return arch, pretrained
    return name, pretrained or None


def is_local_file(pretrained: str | None) -> bool:
    """Whether ``pretrained`` names a checkpoint file rather than an open_clip tag."""
    if not pretrained:
        return False
    path = Path(pretrained)
    return path.suffix in {".safetensors", ".pt", ".pth", ".bin", ".ckpt"} or path.exists()


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint without executing code from it: safetensors, else weights-only torch."""
    path = Path(path)
    import torch

    if not path.is_file():
        raise ModelLoadError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot read {path} as a weights-only checkpoint ({exc}); "
            "convert it to .safetensors or save a plain state_dict"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} does not hold a state_dict")
    # Checkpoints saved from DataParallel / open_clip training carry a "module." prefix.
    return {k.removeprefix("module."): v for k, v in state.items()}


def create_model(name: str, pretrained: str | None = None, device: str | torch.device = "cpu") -> ClipModel:
    """Build an open_clip model in eval mode, float32, on ``device``.

    ``pretrained`` is an open_clip tag (downloaded once into the cache), a local checkpoint file,
    or None for a seeded random initialisation.
    """
    import open_clip
    import torch

    register_configs()
    arch, weights = resolve(name, pretrained)
    if arch not in open_clip.list_models():
        raise ModelLoadError(
            f"unknown model {name!r}; use an open_clip name (e.g. ViT-B-32), {TINY_MODEL!r} or {DEMO_MODEL!r}"
        )
    if weights is None or is_local_file(weights):
        torch.manual_seed(INIT_SEED)
        with _quiet_random_init(weights is not None):
            model = open_clip.create_model(arch, pretrained=None)
        if weights is not None:
            _load_weights(model, weights)
    else:
        try:
            model = open_clip.create_model(arch, pretrained=weights)
        except Exception as exc:
            raise ModelLoadError(
                f"could not download weights {weights!r} for {arch} ({type(exc).__name__}: {exc}). "
                f"Without internet access, pass a local checkpoint instead: "
                f"--pretrained /path/to/weights.safetensors (or .pt), or use --model {DEMO_MODEL} "
                "which ships with Glimpse."
            ) from exc
    model.eval()
    return model.to(device)


class _DropRandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


@contextmanager
def _quiet_random_init(active: bool) -> Iterator[None]:
    """Hide open_clip's "initialized randomly" notice when local weights are loaded right after."""
    if not active:
        yield
        return
    notice = _DropRandomInitNotice()
    root = logging.getLogger()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)


def _load_weights(model: ClipModel, path: str) -> None:
    state = load_state_dict(path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path} does not match the model architecture: {exc}") from exc


def save_checkpoint(model: ClipModel, path: str | Path, half: bool = True) -> None:
    """Write a model's weights as safetensors (float16 by default: half the size, same ranking)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
