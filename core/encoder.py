"""The OpenCLIP encoder shared by the indexer and the query service.

The model is loaded lazily, once, under a lock; outputs are L2-normalised float32 numpy arrays.
Text queries are encoded on their real token length (see :func:`encode_text_trimmed`) and cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from glimpse.core.models import ClipModel, create_model, model_ref, register_configs, resolve
from glimpse.core.preprocess import PreprocessConfig
from glimpse.core.settings import resolve_device
from glimpse.core.text_tower import pack_text_transformer

if TYPE_CHECKING:
    from PIL import Image

# A text transformer: (batch, length, width) and an attention mask in, the same shape out.
TextTransformer = Callable[..., torch.Tensor]


def encode_text_trimmed(
    model: ClipModel, tokens: torch.Tensor, transformer: TextTransformer | None = None
) -> torch.Tensor:
    """``model.encode_text`` computed on the real token length instead of the padded context.

    The text tower attends causally and reads the end-of-text token, so padding after the longest
    real sequence cannot change the result; dropping it saves most of the work for short queries.
    ``transformer`` stands in for ``model.transformer`` (the packed copy of core/text_tower.py).
    Models without that structure fall back to the stock method.
    """
    pool = getattr(model, "text_pool_type", None)
    mask = getattr(model, "attn_mask", None)
    if pool not in ("argmax", "eos") or mask is None or not hasattr(model, "token_embedding"):
        return model.encode_text(tokens)
    from open_clip.transformer import text_global_pool

    eos_id: Any = getattr(model, "text_eos_id", None)
    if pool == "argmax":
        last = tokens.argmax(dim=-1)
    else:
        last = (tokens == eos_id).int().argmax(dim=-1)
    length = int(last.max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = (transformer or model.transformer)(x, attn_mask=mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, pool, eos_token_id=eos_id)
    if model.text_projection is not None:
        if isinstance(model.text_projection, torch.nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return x


def normalize_on_device(crops: np.ndarray, cfg: PreprocessConfig, device: str) -> torch.Tensor:
    """(N, S, S, 3) uint8 crops -> (N, 3, S, S) float32 model input on ``device``: the arithmetic
    of :meth:`PreprocessConfig.normalize`, done by torch where the model runs (the result is a
    channels-last view, the layout the GPU path uses anyway)."""
    if not crops.flags.writeable:  # a read-only view (Ray's zero-copy batches): torch wants its own
        crops = crops.copy()
    x = torch.from_numpy(np.ascontiguousarray(crops))
    if device.startswith("cuda"):
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.to(torch.float32) / 255.0
    mean = torch.tensor(cfg.mean, dtype=torch.float32, device=x.device)
    std = torch.tensor(cfg.std, dtype=torch.float32, device=x.device)
    return ((x - mean) / std).permute(0, 3, 1, 2)


class Encoder:
    """Lazily loaded OpenCLIP model: images and texts in, normalised float32 vectors out."""

    def __init__(
        self,
        model: str,
        pretrained: str | None = None,
        device: str = "auto",
        text_cache_size: int = 1024,
        pack_text: bool = False,
    ) -> None:
        """``pack_text``: keep a oneDNN-packed copy of the text transformer for faster queries on
        the CPU (core/text_tower.py); it costs the text tower's size in memory, so only the query
        service asks for it. ``pretrained`` as for :func:`~glimpse.core.models.canonical_pretrained`
        (None: the model's default); a bad name or tag raises ModelLoadError here, before any load."""
        self.ref = model_ref(model, pretrained)
        self.device = resolve_device(device)
        self._lock = threading.Lock()
        self._model: ClipModel | None = None
        self._pack_text = pack_text
        self._text_transformer: TextTransformer | None = None
        self._tokenizer: Callable[[list[str]], torch.Tensor] | None = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = text_cache_size
        self._cache_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------
    @property
    def model(self) -> ClipModel:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._load()
        assert self._model is not None
        return self._model

    def _load(self) -> None:
        import open_clip

        register_configs()
        arch, _ = resolve(self.ref.name, self.ref.pretrained)
        model = create_model(self.ref.name, self.ref.pretrained, device=self.device)
        if self.device.startswith("cuda"):
            model = model.to(memory_format=torch.channels_last)
        self._tokenizer = open_clip.get_tokenizer(arch)
        if self._pack_text:
            self._text_transformer = pack_text_transformer(model)
        self._model = model

    def load(self) -> Encoder:
        """Load now (the API does this at start-up so no request pays for it)."""
        _ = self.model
        return self

    @property
    def text_packed(self) -> bool:
        """Whether text is encoded through the oneDNN-packed transformer (loads the model)."""
        _ = self.model
        return self._text_transformer is not None

    @property
    def dim(self) -> int:
        model = self.model
        proj = getattr(model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[1])
        return int(model.visual.output_dim)

    def preprocess_config(self) -> PreprocessConfig:
        visual = self.model.visual
        size = visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        return PreprocessConfig(
            image_size=int(size),
            mean=tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
            std=tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
            interpolation=cfg.get("interpolation", "bicubic"),
            resize_mode=cfg.get("resize_mode", "shortest"),
        )

    # -- encoding ------------------------------------------------------------------------
    def _autocast(self) -> AbstractContextManager[Any]:
        if self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    @torch.inference_mode()
    def encode_image_tensors(self, pixels: torch.Tensor | np.ndarray) -> np.ndarray:
        """Encode preprocessed images (N, 3, H, W) into (N, D) unit vectors."""
        if isinstance(pixels, np.ndarray):
            pixels = torch.from_numpy(pixels)
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        cuda = self.device.startswith("cuda")
        if cuda:
            if pixels.device.type == "cpu":
                pixels = pixels.pin_memory().to(self.device, non_blocking=True)
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            features = self.model.encode_image(pixels)
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    def encode_image_crops(self, crops: np.ndarray) -> np.ndarray:
        """Encode (N, S, S, 3) uint8 crops (:meth:`PreprocessConfig.crop`) into (N, D) unit vectors.

        On the CPU the crops are normalised by :meth:`PreprocessConfig.normalize`, the arithmetic
        of the decode workers' ``to_array``, so the vectors are those of :meth:`encode_image_tensors`
        on the same images. On a GPU the uint8 crops are copied (a quarter of the float bytes)
        and normalised there (:func:`normalize_on_device`), which keeps that work off the CPU.
        """
        cfg = self.preprocess_config()
        if not self.device.startswith("cuda"):
            return self.encode_image_tensors(cfg.normalize(crops))
        return self.encode_image_tensors(normalize_on_device(crops, cfg, self.device))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encode decoded RGB images (any size) into (N, D) unit vectors, preprocessed exactly as
        the indexer's decode workers do (:meth:`PreprocessConfig.to_array`)."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        cfg = self.preprocess_config()
        return self.encode_image_tensors(np.stack([cfg.to_array(im) for im in images]))

    @torch.inference_mode()
    def _encode_texts_uncached(self, texts: Sequence[str]) -> np.ndarray:
        model = self.model
        assert self._tokenizer is not None  # set by _load, with the model
        tokens = self._tokenizer(list(texts)).to(self.device)
        with self._autocast():
            features = encode_text_trimmed(model, tokens, self._text_transformer)
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts into (N, D) unit vectors; repeated texts come from a bounded LRU cache."""
        texts = [t.strip() for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cached = {t: v for t in set(texts) if (v := self._cache_get(t)) is not None}
        missing = sorted(set(texts) - set(cached))
        if missing:
            fresh = dict(zip(missing, self._encode_texts_uncached(missing), strict=True))
            for t, v in fresh.items():
                self._cache_put(t, v)
            cached.update(fresh)
        return np.stack([cached[t] for t in texts]).astype(np.float32, copy=False)

    def cached_text(self, text: str) -> np.ndarray | None:
        """The cached vector of ``text`` if it was encoded recently, else None (never encodes)."""
        return self._cache_get(text.strip())

    def _cache_get(self, text: str) -> np.ndarray | None:
        with self._cache_lock:
            vec = self._cache.get(text)
            if vec is not None:
                self._cache.move_to_end(text)
            return vec

    def _cache_put(self, text: str, vec: np.ndarray) -> None:
        if self._cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[text] = vec
            self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
