"""(image, caption) pairs for training: reading manifests, checking pairs, the held-out split."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

# A decoded image -> the model's input tensor (3, S, S); captions -> token ids (N, context).
ImageTransform = Callable[[Image.Image], torch.Tensor]
Tokenizer = Callable[[list[str]], torch.Tensor]
Sample = tuple[torch.Tensor, str]
Collate = Callable[[list[Sample | None]], tuple[torch.Tensor, torch.Tensor]]

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "path")
CAPTION_COLUMNS = ("caption", "text")


class PairsFileError(ValueError):
    """The pairs manifest itself cannot be used (missing, unknown format, missing columns)."""


@dataclass(frozen=True)
class Pair:
    image: Path
    caption: str


@dataclass(frozen=True)
class BadPair:
    """A manifest row that was skipped, and why."""

    source: str  # "pairs.csv:12"
    image: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.image or '(no image)'}: {self.reason}"


def read_pairs(manifest: Path, *, check_images: bool = True) -> tuple[list[Pair], list[BadPair]]:
    """Read a CSV or JSONL manifest of (image, caption) pairs.

    Columns: ``image`` or ``path``, and ``caption`` or ``text``; relative image paths are relative
    to the manifest's folder. Rows with an empty caption, a missing image or (with
    ``check_images``) an image that does not decode are returned as :class:`BadPair`, not raised.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise PairsFileError(f"{manifest}: pairs file not found")
    pairs: list[Pair] = []
    bad: list[BadPair] = []
    for line, row in _rows(manifest):
        source = f"{manifest.name}:{line}"
        image = str(_first(row, IMAGE_COLUMNS) or "").strip()
        caption = " ".join(str(_first(row, CAPTION_COLUMNS) or "").split())
        path = (manifest.parent / image) if image else None
        reason = _problem(path, caption, check_images)
        if reason or path is None:
            bad.append(BadPair(source, image, reason or "no image path"))
        else:
            pairs.append(Pair(path, caption))
    for problem in bad:
        log.warning("skipping pair %s", problem)
    return pairs, bad


def _rows(manifest: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row) from a CSV or JSONL file, after checking the columns exist."""
    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            _check_columns(manifest, reader.fieldnames or [])
            for row in reader:
                yield reader.line_num, row
    elif suffix in {".jsonl", ".ndjson"}:
        with manifest.open(encoding="utf-8") as fh:
            checked = False
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise PairsFileError(f"{manifest}:{line}: not valid JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise PairsFileError(f"{manifest}:{line}: each line must be a JSON object")
                if not checked:
                    _check_columns(manifest, list(row))
                    checked = True
                yield line, row
    else:
        raise PairsFileError(f"{manifest}: unknown pairs format {suffix!r}; use .csv or .jsonl")


def _check_columns(manifest: Path, columns: Sequence[str]) -> None:
    for wanted in (IMAGE_COLUMNS, CAPTION_COLUMNS):
        if not any(c in columns for c in wanted):
            raise PairsFileError(
                f"{manifest}: no {' or '.join(map(repr, wanted))} column (found: {', '.join(columns) or 'none'})"
            )


def _first(row: dict[str, Any], names: tuple[str, ...]) -> object:
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


def _problem(path: Path | None, caption: str, check_image: bool) -> str | None:
    if path is None:
        return "no image path"
    if not caption:
        return "empty caption"
    if not path.is_file():
        return "image file not found"
    if check_image:
        return image_problem(path)
    return None


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as a training image, or None when it decodes."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale, enough to prove it decodes
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"image does not decode ({type(exc).__name__}: {exc})"
    except Image.DecompressionBombError as exc:
        return f"image too large ({exc})"
    return None


def split_holdout(
    pairs: list[Pair], fraction: float, base: Path | None = None
) -> tuple[list[Pair], list[Pair]]:
    """Split into (train, held out) by a hash of each image path (relative to ``base`` when inside it).

    The hash makes the split independent of row order and stable when rows are added, so a
    held-out image never leaks into training on a later run over a grown manifest. Hashing the
    path relative to the manifest's folder keeps the split the same wherever the dataset lives.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    threshold = int(fraction * 2**32)
    train: list[Pair] = []
    held: list[Pair] = []
    for pair in pairs:
        key = pair.image
        if base is not None and key.is_relative_to(base):
            key = key.relative_to(base)
        digest = hashlib.sha1(key.as_posix().encode("utf-8")).digest()
        (held if int.from_bytes(digest[:4], "big") < threshold else train).append(pair)
    return train, held


def load_rgb(path: Path, max_side: int | None = None) -> Image.Image:
    """Open an image as RGB; JPEGs decode at a reduced scale when ``max_side`` allows it."""
    with Image.open(path) as im:
        if max_side:
            im.draft("RGB", (max_side, max_side))
        return im.convert("RGB")


class PairDataset(torch.utils.data.Dataset[Sample | None]):
    """Images through ``transform``; captions as strings (tokenized in the collate function)."""

    def __init__(self, pairs: list[Pair], transform: ImageTransform, decode_side: int | None = None):
        self.pairs = pairs
        self.transform = transform
        # Decode large JPEGs only as large as the transform needs (x2 for crop augmentation).
        self.decode_side = decode_side

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str] | None:
        pair = self.pairs[index]
        try:
            image = load_rgb(pair.image, self.decode_side)
        except (OSError, SyntaxError, ValueError) as exc:
            # Checked when read, so this is a file that changed since; skip it, don't stop a long run.
            log.warning("skipping %s: image does not decode (%s)", pair.image, exc)
            return None
        return self.transform(image), pair.caption


def make_collate(tokenize: Tokenizer) -> Collate:
    def collate(batch: list[Sample | None]) -> tuple[torch.Tensor, torch.Tensor]:
        kept = [item for item in batch if item is not None]
        if not kept:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        images, captions = zip(*kept, strict=True)
        return torch.stack(images), tokenize(list(captions))

    return collate
