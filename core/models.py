"""OpenCLIP model construction: the project's own configs, named models and safe weight loading.

Everything that builds a CLIP model goes through :func:`create_model`, so the indexer, the query
service and the trainer load a checkpoint exactly the same way a user does offline.
"""

from __future__ import annotations

import logging
import os
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
# Spellings of ``pretrained`` with a meaning of their own: a bundled model's shipped checkpoint,
# and a seeded random initialisation (for any model).
BUNDLED = "bundled"
RANDOM_INIT = "none"
# Where open_clip downloads tagged weights from (a fast reachability probe runs before it).
HF_ENDPOINT_ENV = "HF_ENDPOINT"
PROBE_SECONDS = 3.0

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
        weights = "random init" if self.pretrained in (None, RANDOM_INIT) else self.pretrained
        return f"{self.name} ({weights})"


def register_configs() -> None:
    """Make the project's model configs (``glimpse-tiny``) known to open_clip, once."""
    global _registered
    with _register_lock:
        if _registered:
            return
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def _project_configs() -> set[str]:
    """Architectures whose config ships with Glimpse (no open_clip weights exist for them)."""
    return {p.stem for p in CONFIG_DIR.glob("*.json")}


def default_pretrained(name: str) -> str | None:
    """The weights a model gets when ``--pretrained`` is not given.

    A bundled model (``glimpse-demo``) gets its shipped checkpoint (``"bundled"``); a project
    config (``glimpse-tiny``) a seeded random initialisation (None); an open_clip model its
    LAION-2B training when open_clip lists one (the last such tag: e.g. ViT-B-32 ->
    ``laion2b_s34b_b79k``, ViT-L-14 -> ``laion2b_s32b_b82k``), else ``openai``, else the first
    tag open_clip lists. Raises ModelLoadError for an unknown model or one without any weights.
    """
    import open_clip

    register_configs()
    if name in BUNDLED_MODELS:
        return BUNDLED
    if name in _project_configs():
        return None
    if name not in open_clip.list_models():
        raise ModelLoadError(
            f"unknown model {name!r}; use an open_clip name (e.g. ViT-B-32), {TINY_MODEL!r} or {DEMO_MODEL!r}"
        )
    tags = [t.lower() for t in open_clip.list_pretrained_tags_by_model(name)]
    if not tags:
        raise ModelLoadError(
            f"open_clip has no pretrained weights for {name}: pass --pretrained /path/to/weights.safetensors, "
            f"or --pretrained {RANDOM_INIT} for a random initialisation"
        )
    laion2b = [t for t in tags if t.startswith("laion2b")]
    if laion2b:
        return laion2b[-1]
    return "openai" if "openai" in tags else tags[0]


def canonical_pretrained(name: str, pretrained: str | None) -> str | None:
    """What a library records for ``--model name --pretrained pretrained``.

    ``pretrained`` None means the model's default (:func:`default_pretrained`); ``"none"`` a
    random initialisation; ``"bundled"`` a bundled model's checkpoint; anything else an
    open_clip tag of that model or a local checkpoint file. The result is unambiguous and stable
    (``canonical_pretrained(name, canonical_pretrained(name, x))`` is the same): random init is
    None for a model whose default is random init (``glimpse-tiny``), ``"none"`` otherwise.
    Raises ModelLoadError for an unknown model, or a tag the model does not have (listing its tags).
    """
    default = default_pretrained(name)
    value = pretrained.strip() if pretrained is not None else None
    if value is None or value == "":
        return default
    if value.lower() == RANDOM_INIT:
        return None if default is None else RANDOM_INIT
    if value.lower() == BUNDLED:
        if name not in BUNDLED_MODELS:
            raise ModelLoadError(
                f"{name} has no bundled weights (only {', '.join(sorted(BUNDLED_MODELS))} do); "
                f"leave --pretrained out for its default ({default or RANDOM_INIT})"
            )
        return BUNDLED
    if name in BUNDLED_MODELS and value == str(BUNDLED_MODELS[name][1]):
        return BUNDLED
    if is_local_file(value):
        return value
    import open_clip

    arch = BUNDLED_MODELS[name][0] if name in BUNDLED_MODELS else name
    tags = [t.lower() for t in open_clip.list_pretrained_tags_by_model(arch)]
    if value.lower() in tags:
        return value.lower()
    valid = ", ".join(tags) if tags else "none in open_clip"
    own = f"{BUNDLED}, " if name in BUNDLED_MODELS else ""
    raise ModelLoadError(
        f"{name} has no pretrained weights {value!r} (valid tags: {valid}); pass one of those, "
        f"{own}a local checkpoint file, or {RANDOM_INIT} for a random initialisation"
    )


def model_ref(name: str, pretrained: str | None) -> ModelRef:
    """The canonical :class:`ModelRef` of a model name and a ``--pretrained`` value (see
    :func:`canonical_pretrained`); raises ModelLoadError as it does."""
    return ModelRef(name, canonical_pretrained(name, pretrained))


def resolve(name: str, pretrained: str | None) -> tuple[str, str | None]:
    """Map a user-facing model name and ``--pretrained`` value to (open_clip architecture,
    open_clip tag or checkpoint file, or None for a random initialisation)."""
    weights = canonical_pretrained(name, pretrained)
    arch = BUNDLED_MODELS[name][0] if name in BUNDLED_MODELS else name
    if weights == BUNDLED:
        return arch, str(BUNDLED_MODELS[name][1])
    if weights in (None, RANDOM_INIT):
        return arch, None
    return arch, weights


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
    if weights is None or is_local_file(weights):
        torch.manual_seed(INIT_SEED)
        with _quiet_random_init(weights is not None):
            model = open_clip.create_model(arch, pretrained=None)
        if weights is not None:
            _load_weights(model, weights)
    else:
        model = _create_downloaded(arch, weights)
    model.eval()
    return model.to(device)


def _hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether the model hub's host answers a TCP connection within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get(HF_ENDPOINT_ENV) or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Make huggingface_hub answer from its cache only (no retries against an unreachable hub)."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _create_downloaded(arch: str, tag: str) -> ClipModel:
    """open_clip's model with its tagged weights: from the local cache, else downloaded once.

    When the hub cannot be reached the cache alone is asked, so an offline machine gets its
    answer in seconds instead of a minute of retries.
    """
    import open_clip

    offline = not _hub_reachable()
    try:
        with _hub_offline(offline):
            return open_clip.create_model(arch, pretrained=tag)
    except Exception as exc:
        where = "the model hub cannot be reached and they are not in the local cache" if offline else str(exc)
        raise ModelLoadError(
            f"could not get weights {tag!r} for {arch} ({where}). Without internet access, use the model "
            f"that ships with Glimpse (glimpse index PATH --model {DEMO_MODEL}), or download the "
            f"weights elsewhere and pass them: --pretrained /path/to/weights.safetensors (or .pt)."
        ) from exc


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
