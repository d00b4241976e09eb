"""Labelled synthetic media: coloured shapes with captions, product catalogues and short videos.

Everything is drawn with Pillow and is a pure function of a seed, so tests, the offline demo and
the training of the ``glimpse-demo`` model get the same data on every machine. Each item has a
:class:`Scene` (what is drawn) from which its captions are written, so the ground truth of any
image, catalogue row or video segment is known exactly.

``python -m glimpse.training.synthetic pairs OUT --n 10000 --seed 1`` writes a training set of
(image, caption) pairs; ``catalogue`` and ``videos`` write the demo's media.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated

import typer
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 160, 50),
    "blue": (35, 75, 215),
    "yellow": (240, 210, 30),
    "purple": (130, 45, 170),
    "orange": (245, 135, 25),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "black": (12, 12, 12),
    "grey": (128, 128, 128),
    "beige": (232, 218, 190),
}
# Diameter of the shape as a fraction of the shorter image side. Even "small" spans several 8 px
# patches of a 64 px model input: a shape must be big enough for its outline to be seen.
SIZES: dict[str, float] = {"small": 0.42, "large": 0.72}
# Where a small shape's centre sits, as fractions of width and height.
POSITIONS: dict[str, tuple[float, float]] = {
    "middle": (0.5, 0.5),
    "left": (0.29, 0.5),
    "right": (0.71, 0.5),
    "top": (0.5, 0.29),
    "bottom": (0.5, 0.71),
}
# A shape must stand out from its background; pairs closer than this (RGB distance) are not drawn.
MIN_CONTRAST = 120.0

# Shapes as products in the demo shop, with a category for each.
PRODUCT_KINDS: dict[str, tuple[str, str]] = {
    "circle": ("badge", "badges"),
    "square": ("tile", "tiles"),
    "triangle": ("pennant", "pennants"),
    "star": ("sticker", "stickers"),
    "cross": ("patch", "patches"),
    "ring": ("ring", "rings"),
}


@dataclass(frozen=True)
class Scene:
    """One shape on a plain background; the jitter fields make each drawing a little different."""

    shape: str
    colour: str
    background: str
    size: str = "large"
    position: str = "middle"
    rotation: float = 0.0  # degrees
    scale_jitter: float = 1.0  # multiplies the nominal size
    offset: tuple[float, float] = (0.0, 0.0)  # fractions of width/height added to the position
    rgb_jitter: tuple[int, int, int] = (0, 0, 0)

    def describe(self) -> str:
        """The full caption, e.g. ``a small red circle on the left on a white background``."""
        where = "" if self.position == "middle" else f" {_position_phrase(self.position)}"
        return f"a {self.size} {self.colour} {self.shape}{where} on a {self.background} background"


@dataclass(frozen=True)
class CatalogueItem:
    """A row of the generated product manifest, with the scene its image shows."""

    path: str
    sku: str
    title: str
    description: str
    price: float
    currency: str
    category: str
    url: str
    scene: Scene = field(compare=False)


@dataclass(frozen=True)
class Catalogue:
    manifest: Path
    items: list[CatalogueItem]


@dataclass(frozen=True)
class SyntheticVideo:
    """A generated video and its ground truth: ``segments[i]`` shows ``scenes[i]``."""

    path: Path
    segments: list[tuple[float, float, str]]  # (t_start, t_end, caption), seconds, end exclusive
    scenes: list[Scene]
    fps: int
    size: tuple[int, int]


def contrasts(colour: str, background: str) -> bool:
    """Whether a shape of ``colour`` is clearly visible on ``background``."""
    return math.dist(COLOURS[colour], BACKGROUNDS[background]) >= MIN_CONTRAST


def valid_colour_backgrounds() -> list[tuple[str, str]]:
    return [(c, b) for c in COLOURS for b in BACKGROUNDS if contrasts(c, b)]


def item_rng(seed: int, index: int, purpose: str = "pair") -> random.Random:
    """An RNG for item ``index`` alone, so item i is the same whatever the number of items."""
    # String seeds are hashed with SHA-512 by `random`: stable across runs and platforms.
    return random.Random(f"glimpse:{purpose}:{seed}:{index}")


def random_scene(
    rng: random.Random,
    *,
    shapes: tuple[str, ...] = SHAPES,
    backgrounds: tuple[str, ...] | None = None,
    positions: bool = True,
) -> Scene:
    """Draw shape, colour, background, size, position and jitter from ``rng``."""
    shape = rng.choice(shapes)
    pairs = [(c, b) for c, b in valid_colour_backgrounds() if backgrounds is None or b in backgrounds]
    colour, background = rng.choice(pairs)
    size = rng.choice(tuple(SIZES))
    # A large shape fills the frame, so only small ones move away from the middle.
    position = rng.choice(tuple(POSITIONS)) if positions and size == "small" else "middle"
    return Scene(
        shape=shape,
        colour=colour,
        background=background,
        size=size,
        position=position,
        rotation=rng.uniform(-20.0, 20.0),
        scale_jitter=rng.uniform(0.85, 1.15),
        offset=(rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05)),
        rgb_jitter=(rng.randint(-18, 18), rng.randint(-18, 18), rng.randint(-18, 18)),
    )


# ---------------------------------------------------------------------------------------------
# Drawing


def render(scene: Scene, size: int | tuple[int, int] = 256, *, supersample: int = 3) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size`` (int: square); edges anti-aliased by supersampling."""
    width, height = (size, size) if isinstance(size, int) else size
    big = Image.new("RGB", (width * supersample, height * supersample), BACKGROUNDS[scene.background])
    draw_shape(ImageDraw.Draw(big), scene, big.size)
    return big.resize((width, height), Image.Resampling.LANCZOS)


def draw_shape(draw: ImageDraw.ImageDraw, scene: Scene, canvas: tuple[int, int]) -> None:
    width, height = canvas
    side = min(width, height)
    radius = SIZES[scene.size] * scene.scale_jitter * side / 2
    px, py = POSITIONS[scene.position]
    # Positions are relative to the central square, which is what a centre crop keeps.
    cx = width / 2 + (px - 0.5 + scene.offset[0]) * side
    cy = height / 2 + (py - 0.5 + scene.offset[1]) * side
    fill = tuple(
        max(0, min(255, v + j)) for v, j in zip(COLOURS[scene.colour], scene.rgb_jitter, strict=True)
    )
    if scene.shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    elif scene.shape == "ring":
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius),
            outline=fill,
            width=max(1, round(radius * 0.32)),
        )
    else:
        draw.polygon(_outline(scene.shape, cx, cy, radius, scene.rotation), fill=fill)


def _outline(shape: str, cx: float, cy: float, radius: float, rotation: float) -> list[tuple[float, float]]:
    if shape == "square":
        points = [(math.cos(math.radians(a)), math.sin(math.radians(a))) for a in (45, 135, 225, 315)]
        points = [(x * 0.8, y * 0.8) for x, y in points]  # same visual weight as the circle
    elif shape == "triangle":
        points = [(math.cos(math.radians(a)), math.sin(math.radians(a))) for a in (-90, 30, 150)]
        points = [(x, y + 0.2) for x, y in points]  # centre the triangle's mass, not its circumcircle
    elif shape == "star":
        points = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.42
            a = math.radians(-90 + 36 * k)
            points.append((r * math.cos(a), r * math.sin(a)))
    elif shape == "cross":
        w = 0.34
        points = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
                  (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]  # fmt: skip
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return [(cx + radius * (x * cos - y * sin), cy + radius * (x * sin + y * cos)) for x, y in points]


# ---------------------------------------------------------------------------------------------
# Captions

_SIZE_WORDS = {"small": ("small", "small", "little", "tiny"), "large": ("large", "large", "big")}
_PREFIXES = ("", "", "", "", "a photo of ", "an image of ", "a picture of ", "a drawing of ")


def _position_phrase(position: str) -> str:
    return {
        "left": "on the left",
        "right": "on the right",
        "top": "at the top",
        "bottom": "at the bottom",
        "middle": "in the middle",
    }[position]


def _with_article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def random_caption(scene: Scene, rng: random.Random) -> str:
    """One of many phrasings of ``scene``: from ``red circle`` to the full description.

    Short captions are common on purpose: they are what people type as queries.
    """
    style = rng.random()
    # Shape-only captions are frequent on purpose: colour is learnt almost at once, and a caption
    # that names only the shape is what makes a model from scratch learn outlines too.
    if style < 0.2:
        noun = scene.shape
    elif style < 0.28:
        noun = f"{scene.colour} shape"
    else:
        noun = f"{scene.colour} {scene.shape}"
    if rng.random() < 0.35:
        noun = f"{rng.choice(_SIZE_WORDS[scene.size])} {noun}"
    words = noun
    if scene.position != "middle" and rng.random() < 0.35:
        words += " " + _position_phrase(scene.position)
    if rng.random() < 0.35:
        words += rng.choice((f" on a {scene.background} background", f" on {scene.background}"))
    if rng.random() < 0.3:
        return words  # bare phrase: "red circle on white"
    return rng.choice(_PREFIXES) + _with_article(words)


# ---------------------------------------------------------------------------------------------
# Writers


def make_pairs(
    out_dir: Path,
    n: int,
    seed: int,
    *,
    image_size: int = 128,
    image_format: str = "jpg",
    manifest_name: str = "pairs.csv",
) -> Path:
    """Write ``n`` captioned shape images and a CSV manifest (image, caption + the scene's fields).

    Returns the manifest path; image paths in it are relative to its folder.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    manifest = out_dir / manifest_name
    fields = ["image", "caption", "shape", "colour", "background", "size", "position"]
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for i in range(n):
            rng = item_rng(seed, i)
            scene = random_scene(rng)
            relative = f"images/{i:06d}.{image_format}"
            _save(render(scene, image_size), out_dir / relative)
            writer.writerow({"image": relative, "caption": random_caption(scene, rng)} | _scene_fields(scene))
    return manifest


def make_gallery(n: int, seed: int, image_size: int = 128) -> list[tuple[Image.Image, Scene]]:
    """``n`` rendered scenes in memory: a labelled gallery for retrieval checks."""
    scenes = [random_scene(item_rng(seed, i, "gallery")) for i in range(n)]
    return [(render(scene, image_size), scene) for scene in scenes]


def make_catalogue(out_dir: Path, n: int, seed: int, *, image_size: int = 256) -> Catalogue:
    """Write ``n`` product images and ``catalogue.csv`` (path, sku, title, description, price,
    currency, category, url); shapes are the products, and the category follows the shape."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    items = [_catalogue_item(seed, i, image_size, out_dir) for i in range(n)]
    manifest = out_dir / "catalogue.csv"
    fields = ["path", "sku", "title", "description", "price", "currency", "category", "url"]
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for item in items:
            writer.writerow({f: getattr(item, f) for f in fields})
    return Catalogue(manifest=manifest, items=items)


def _catalogue_item(seed: int, index: int, image_size: int, out_dir: Path) -> CatalogueItem:
    rng = item_rng(seed, index, "catalogue")
    # Products are photographed on light backgrounds, centred, like a shop's pack shots.
    scene = random_scene(rng, backgrounds=("white", "beige", "grey"), positions=False)
    kind, category = PRODUCT_KINDS[scene.shape]
    sku = f"GL{seed:03d}-{index:05d}"
    relative = f"images/{sku}.jpg"
    _save(render(scene, image_size), out_dir / relative)
    # "Small blue ring", not "Small blue ring ring": a shape that is its own product is named once.
    product = scene.shape if kind == scene.shape else f"{scene.shape} {kind}"
    title = f"{scene.size.capitalize()} {scene.colour} {product}"
    description = (
        f"{_with_article(f'{scene.size} {scene.colour} {product}').capitalize()}, "
        f"shown on a {scene.background} background."
    )
    price = rng.randint(2, 120) - 0.01
    return CatalogueItem(
        path=relative,
        sku=sku,
        title=title,
        description=description,
        price=round(price, 2),
        currency="EUR",
        category=category,
        url=f"https://shop.example.com/products/{sku.lower()}",
        scene=scene,
    )


SHOP_BRANDS = ("Acme", "Borealis", "Corvid")
SHOP_MATERIALS = ("ceramic", "enamel")
SHOP_SHAPES = ("circle", "square", "triangle")
SHOP_COLOURS = ("red", "green", "blue")
# The rest of the shop: other products, brands and colours, so that (as in a real catalogue) what
# a query names is a small part of it.
OTHER_BRANDS = ("Dunmore", "Fenwick")
OTHER_SHAPES = ("star", "cross", "ring")
OTHER_COLOURS = ("yellow", "purple", "orange", "black")


@dataclass(frozen=True)
class ShopItem:
    """A product whose picture and text each tell only part of it: the image shows the colour and
    shape, the text names the brand, material and shape but never the colour."""

    sku: str
    title: str
    description: str
    brand: str
    price: float
    category: str
    scene: Scene = field(compare=False)


def make_shop(seed: int = 0, image_size: int = 64) -> list[tuple[Image.Image, ShopItem]]:
    """Every brand x material x shape x colour of the ``SHOP_*`` tuples (54 items), then of the
    ``OTHER_*`` ones (48), rendered: "red Acme circle" needs the picture (for red) and the text
    (for Acme) together."""
    items: list[tuple[Image.Image, ShopItem]] = []
    combos = [
        (b, m, s, c) for b in SHOP_BRANDS for m in SHOP_MATERIALS for s in SHOP_SHAPES for c in SHOP_COLOURS
    ] + [
        (b, m, s, c)
        for b in OTHER_BRANDS
        for m in SHOP_MATERIALS
        for s in OTHER_SHAPES
        for c in OTHER_COLOURS
    ]
    for index, (brand, material, shape, colour) in enumerate(combos):
        rng = item_rng(seed, index, "shop")
        scene = Scene(
            shape=shape,
            colour=colour,
            background="white",
            rotation=rng.uniform(-15.0, 15.0),
            scale_jitter=rng.uniform(0.9, 1.1),
        )
        kind, category = PRODUCT_KINDS[shape]
        item = ShopItem(
            sku=f"{brand[:2].upper()}-{index + 1000}",
            title=f"{brand} {shape} {kind}",
            description=f"A {material} {kind} made by {brand}.",
            brand=brand,
            price=float(rng.randint(3, 90)) - 0.01,
            category=category,
            scene=scene,
        )
        items.append((render(scene, image_size), item))
    return items


def make_videos(
    out_dir: Path,
    seed: int,
    *,
    count: int = 3,
    size: tuple[int, int] = (320, 240),
    fps: int = 12,
) -> list[SyntheticVideo]:
    """Write ``count`` H.264 mp4 videos of 12-18 s, each a sequence of 3-4 s shots of one shape.

    Shapes stay in the central square (what a centre crop sees) and drift slowly, so frames differ
    within a shot while the caption stays true; shots change with a hard cut.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_make_video(out_dir / f"shapes-{seed}-{v}.mp4", seed, v, size, fps) for v in range(count)]


def _make_video(path: Path, seed: int, index: int, size: tuple[int, int], fps: int) -> SyntheticVideo:
    rng = item_rng(seed, index, "video")
    count = rng.randint(4, 5)
    scenes: list[Scene] = []
    while len(scenes) < count:
        scene = random_scene(rng, positions=False)
        # Consecutive shots differ in shape and colour, so every cut is a visible change.
        if not scenes or (scene.shape, scene.colour) != (scenes[-1].shape, scenes[-1].colour):
            scenes.append(scene)
    # Durations first, then each shot's drift: the order the random draws have always been made in.
    durations = [rng.choice((3, 4)) for _ in scenes]
    drifts = [(rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)) for _ in scenes]
    shots = [Shot(*shot) for shot in zip(scenes, durations, drifts, strict=True)]
    return write_shots(path, shots, size=size, fps=fps)


@dataclass(frozen=True)
class Shot:
    """``scene`` for ``seconds``, its shape drifting by ``drift`` (fractions of the frame) over it."""

    scene: Scene
    seconds: int
    drift: tuple[float, float] = (0.0, 0.0)


def write_shots(
    path: Path, shots: list[Shot], *, size: tuple[int, int] = (320, 240), fps: int = 12
) -> SyntheticVideo:
    """An H.264 mp4 of ``shots`` joined by hard cuts, and its ground truth."""
    import av

    segments, start = [], 0.0
    for shot in shots:
        segments.append((start, start + shot.seconds, shot.scene.describe()))
        start += shot.seconds
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = fps  # a keyframe every second
        stream.options = {"preset": "veryfast", "crf": "23"}
        for shot in shots:
            scene, drift = shot.scene, shot.drift
            for f in range(shot.seconds * fps):
                t = f / (shot.seconds * fps)
                moved = replace(
                    scene, offset=(scene.offset[0] + drift[0] * t, scene.offset[1] + drift[1] * t)
                )
                frame = av.VideoFrame.from_image(render(moved, size, supersample=2))
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return SyntheticVideo(path=path, segments=segments, scenes=[s.scene for s in shots], fps=fps, size=size)


def _scene_fields(scene: Scene) -> dict[str, str]:
    return {
        "shape": scene.shape,
        "colour": scene.colour,
        "background": scene.background,
        "size": scene.size,
        "position": scene.position,
    }


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".jpg", ".jpeg"}:
        image.save(path, quality=90)
    else:
        image.save(path)


# ---------------------------------------------------------------------------------------------
# Command line

app = typer.Typer(help="Generate labelled synthetic media (coloured shapes).", no_args_is_help=True)


@app.command("pairs")
def pairs_command(
    out: Annotated[Path, typer.Argument(help="folder for images/ and pairs.csv")],
    n: Annotated[int, typer.Option(min=1, help="number of (image, caption) pairs")] = 10_000,
    seed: Annotated[int, typer.Option(help="same seed, same files")] = 1,
    image_size: Annotated[int, typer.Option(min=16, help="side of the square images, px")] = 128,
) -> None:
    """Write captioned shape images for training and a pairs.csv manifest."""
    typer.echo(make_pairs(out, n, seed, image_size=image_size))


@app.command("catalogue")
def catalogue_command(
    out: Annotated[Path, typer.Argument(help="folder for images/ and catalogue.csv")],
    n: Annotated[int, typer.Option(min=1, help="number of products")] = 200,
    seed: Annotated[int, typer.Option()] = 1,
) -> None:
    """Write a product catalogue of shapes with a CSV manifest."""
    typer.echo(make_catalogue(out, n, seed).manifest)


@app.command("videos")
def videos_command(
    out: Annotated[Path, typer.Argument(help="folder for the mp4 files")],
    count: Annotated[int, typer.Option(min=1)] = 3,
    seed: Annotated[int, typer.Option()] = 1,
) -> None:
    """Write short H.264 videos of shapes and print their ground-truth segments."""
    for video in make_videos(out, seed, count=count):
        typer.echo(str(video.path))
        for start, end, caption in video.segments:
            typer.echo(f"  {start:5.1f}-{end:5.1f}s  {caption}")


if __name__ == "__main__":
    app()
