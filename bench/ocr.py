"""Benchmark: reading text in pictures (OCR) while indexing, and what it costs `glimpse index`.

Generates (and caches) two folders of JPEGs with text rendered in Debian's DejaVu fonts —
catalogue images of 1-3 MP (a product shape, a brand name and a label line) and camera photos of
8-12 MP (a textured scene with a few signs, some turned) — then measures on this machine:
  * OCR img/s: decode + OCR in the decode workers (one per core, as `glimpse index` runs them),
    with decode alone (the same workers, OCR off) as the baseline, and OCR's own ms per image;
    then the CPU time per image of decode and of OCR on one thread (what a busy machine does not
    change: the workers run at nice 19, so beside other busy processes their wall clock measures
    the neighbours);
  * end-to-end: a full `glimpse index` run with OCR on ÷ the same run with OCR off, side by side
    in each round (fresh libraries); the ratio decides whether OCR is on by default (≥ 0.7).

    python bench/ocr.py [--model ViT-B-32] [--catalogue 48] [--photos 24] [--rounds 3]

The model is randomly initialised (no download needed): speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Only light imports up here: decode workers re-import this script as their main module.

CACHE = Path(os.environ.get("GLIMPSE_BENCH_CACHE", Path(tempfile.gettempdir()) / "glimpse-bench"))
FONTS = Path("/usr/share/fonts/truetype/dejavu")
FACES = ["DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansCondensed.ttf", "DejaVuSansMono-Bold.ttf"]
WORDS = [
    "ORGANIC",
    "SUMMER SALE",
    "OPEN 24 HOURS",
    "Linen Shirt",
    "No. 42",
    "PHARMACY",
    "Espresso Bar",
    "EXIT",
]


def _font(rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS / FACES[int(rng.integers(len(FACES)))]), size)


def _label(text: str, font: ImageFont.FreeTypeFont, ink: tuple[int, ...], angle: float) -> Image.Image:
    left, top, right, bottom = font.getbbox(text)
    label = Image.new("RGBA", (right - left + 20, bottom - top + 20), (0, 0, 0, 0))
    ImageDraw.Draw(label).text((10 - left, 10 - top), text, font=font, fill=(*ink, 255))
    return label.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)


def catalogue_image(path: Path, megapixels: float, rng: np.random.Generator) -> None:
    """A product shot: light background, a coloured shape, a brand name and a smaller label line."""
    side = int(np.sqrt(megapixels * 1e6))
    img = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(225, 255, 3)))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(v) for v in rng.integers(30, 200, 3))
    draw.ellipse((side * 0.2, side * 0.15, side * 0.8, side * 0.7), fill=colour)
    brand = _label(WORDS[int(rng.integers(len(WORDS)))], _font(rng, side // 12), (20, 20, 20), 0)
    img.paste(brand, ((side - brand.width) // 2, int(side * 0.74)), brand)
    small = _label("100% cotton · size M · art. 2231", _font(rng, side // 30), (60, 60, 60), 0)
    img.paste(small, ((side - small.width) // 2, int(side * 0.88)), small)
    arr = np.clip(np.asarray(img, np.float32) + rng.normal(0, 4, (side, side, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, "JPEG", quality=90)


def camera_photo(path: Path, megapixels: float, rng: np.random.Generator) -> None:
    """A textured scene (compresses like a photo) with 2-4 signs of text at angles and sizes."""
    w = int(np.sqrt(megapixels * 1e6 * 4 / 3))
    h = int(w * 3 / 4)
    small = rng.integers(0, 255, (h // 64 + 1, w // 64 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    for _ in range(int(rng.integers(2, 5))):
        text = WORDS[int(rng.integers(len(WORDS)))]
        sign = _label(
            text, _font(rng, int(h * rng.uniform(0.03, 0.09))), (250, 250, 240), float(rng.uniform(-15, 15))
        )
        board = Image.new("RGBA", (sign.width + 30, sign.height + 20), (30, 40, 90, 255))
        board.paste(sign, (15, 10), sign)
        img.paste(
            board, (int(rng.integers(0, w - board.width)), int(rng.integers(0, h - board.height))), board
        )
    arr = np.clip(np.asarray(img, np.float32) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).filter(ImageFilter.SMOOTH).save(path, "JPEG", quality=90)


def make_set(name: str, count: int, mp_range: tuple[float, float]) -> Path:
    folder = CACHE / f"ocr-{name}-{count}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    make = catalogue_image if name == "catalogue" else camera_photo
    for i in range(count):
        make(folder / f"{i:04d}.jpg", float(rng.uniform(*mp_range)), rng)
    return folder


def decode_rate(cfg, folder: Path, workers: int, ocr: bool) -> tuple[float, list[float], int]:
    """(images/s, OCR seconds per image, lines read) of decode (+ OCR) in ``workers`` decode workers."""
    from glimpse.core.settings import Settings
    from glimpse.indexer.decode import decode_image_file
    from glimpse.indexer.reader import decode_pool, ocr_config

    config = ocr_config(Settings(ocr=ocr))
    paths = sorted(str(p) for p in folder.glob("*.jpg"))
    with decode_pool(workers) as pool:
        list(pool.map(_load_ocr if ocr else _noop, range(workers)))  # start the workers (and load OCR)
        start = time.perf_counter()
        results = list(
            pool.map(
                decode_image_file,
                paths,
                [cfg] * len(paths),
                [10**9] * len(paths),
                [True] * len(paths),
                [config] * len(paths),
            )
        )
        elapsed = time.perf_counter() - start
    seconds = [r.ocr.seconds for r in results if r.ocr is not None]
    lines = sum(len(r.ocr.lines) for r in results if r.ocr is not None)
    return len(paths) / elapsed, seconds, lines


def ocr_cpu(folder: Path) -> tuple[float, float]:
    """(decode, OCR) CPU ms per image on one thread of this process: the work itself, which a busy
    machine does not change (wall-clock rates there also measure the neighbours)."""
    from glimpse.core.media import decode_image
    from glimpse.core.ocr import OcrConfig, read_text

    config = OcrConfig(budget_seconds=1e9)
    paths = sorted(folder.glob("*.jpg"))
    read_text(np.full((64, 64, 3), 255, np.uint8), config)  # load the model
    decode = ocr = 0.0
    for path in paths:
        start = time.thread_time()
        img, _ = decode_image(path.read_bytes(), 10**9, draft_size=config.max_side)
        mid = time.thread_time()
        read_text(img, config)
        decode, ocr = decode + mid - start, ocr + time.thread_time() - mid
    return 1000 * decode / len(paths), 1000 * ocr / len(paths)


def _noop(_: int) -> None:
    time.sleep(0.2)


def _load_ocr(_: int) -> None:
    from glimpse.core.ocr import OcrConfig, read_text

    read_text(np.full((64, 64, 3), 255, np.uint8), OcrConfig())
    time.sleep(0.2)


def end_to_end(encoder, folder: Path, batch: int, ocr: bool) -> tuple[float, int]:
    """(images/s, units read) of one full index run into a new library."""
    from sqlalchemy import func, select

    from glimpse.core.library import Library
    from glimpse.core.ocr_text import OcrLineRow
    from glimpse.core.settings import Settings
    from glimpse.indexer.pipeline import Indexer

    data_dir = Path(tempfile.mkdtemp(prefix="glimpse-bench-lib-"))
    try:
        settings = Settings(
            data_dir=data_dir,
            model=encoder.ref.name,
            pretrained=encoder.ref.pretrained,
            batch_size=batch,
            device=encoder.device,
            ocr=ocr,
        )
        library = Library(settings)
        start = time.perf_counter()
        summary = Indexer(library, encoder, settings).run([folder])
        elapsed = time.perf_counter() - start
        assert summary.indexed == len(list(folder.glob("*.jpg"))), summary.as_dict()
        with library.Session() as s:
            lines = s.scalar(select(func.count()).select_from(OcrLineRow)) or 0
        library.close()
        return summary.indexed / elapsed, lines
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--catalogue", type=int, default=48)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    from glimpse.core.runtime import let_idle_threads_sleep

    let_idle_threads_sleep()
    from glimpse.core.encoder import Encoder

    workers = os.cpu_count() or 1
    sets = {
        "catalogue, 1-3 MP": make_set("catalogue", args.catalogue, (1.0, 3.0)),
        "camera, 8-12 MP": make_set("camera", args.photos, (8.0, 12.0)),
    }
    encoder = Encoder(args.model, "none", "cpu")  # random init: speed does not depend on the weights
    encoder.load()
    cfg = encoder.preprocess_config()
    print(
        f"{workers} cores; OCR in {workers} decode workers; model {args.model} (random init), batch {args.batch}"
    )
    print("\nOCR in the decode workers (img/s; baseline: the same workers decoding with OCR off)")
    for name, folder in sets.items():
        base, _, _ = decode_rate(cfg, folder, workers, ocr=False)
        rate, seconds, lines = decode_rate(cfg, folder, workers, ocr=True)
        print(
            f"  {name:18s} decode {base:6.1f} img/s | decode+OCR {rate:5.1f} img/s | "
            f"OCR {1000 * statistics.median(seconds):5.0f} ms/img median, {1000 * max(seconds):5.0f} max | "
            f"{lines / len(seconds):.1f} lines/img"
        )
        decode_ms, ocr_ms = ocr_cpu(folder)
        print(f"  {name:18s} CPU per image, one thread: decode {decode_ms:5.1f} ms | OCR {ocr_ms:5.0f} ms")
    print("\nglimpse index end to end (img/s), OCR off and on side by side in each round")
    for name, folder in sets.items():
        ratios = []
        for r in range(args.rounds):
            off, _ = end_to_end(encoder, folder, args.batch, ocr=False)
            on, lines = end_to_end(encoder, folder, args.batch, ocr=True)
            ratios.append(on / off)
            print(
                f"  {name:18s} round {r + 1}: off {off:5.1f} | on {on:5.1f} | on/off {on / off:.2f} | {lines} lines"
            )
        print(
            f"  {name:18s} on/off median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}; target for on by default: >= 0.7)"
        )


if __name__ == "__main__":
    main()
