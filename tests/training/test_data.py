"""Reading pairs manifests and the held-out split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from glimpse.training.data import Pair, PairsFileError, read_pairs, split_holdout


def test_jsonl_with_path_and_text_columns_resolves_paths_from_the_manifest_folder(
    shape_pairs: Path, tmp_path: Path
) -> None:
    rows = list(csv.DictReader(shape_pairs.open()))[:3]
    manifest = shape_pairs.parent / "pairs.jsonl"
    manifest.write_text("".join(json.dumps({"path": r["image"], "text": r["caption"]}) + "\n" for r in rows))

    pairs, bad = read_pairs(manifest)

    assert bad == []
    assert [p.image for p in pairs] == [shape_pairs.parent / r["image"] for r in rows]
    assert [p.caption for p in pairs] == [r["caption"] for r in rows]


def test_a_manifest_without_a_caption_column_is_refused_by_name(tmp_path: Path) -> None:
    manifest = tmp_path / "shop.csv"
    manifest.write_text("image,title\na.jpg,Red dress\n")
    with pytest.raises(
        PairsFileError, match=r"shop.csv: no 'caption' or 'text' column \(found: image, title\)"
    ):
        read_pairs(manifest)


def test_an_unknown_manifest_format_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "pairs.xlsx"
    manifest.write_bytes(b"")
    with pytest.raises(PairsFileError, match=r"pairs\.xlsx: unknown pairs format"):
        read_pairs(manifest)


def test_invalid_json_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text('{"image": "a.jpg", "caption": "x"}\n{not json\n')
    with pytest.raises(PairsFileError, match=r"pairs\.jsonl:2: not valid JSON"):
        read_pairs(manifest)


def test_held_out_split_is_stable_under_reordering_and_growth() -> None:
    pairs = [Pair(Path(f"img/{i}.jpg"), f"caption {i}") for i in range(2000)]
    train, held = split_holdout(pairs, 0.1)
    _, held_reversed = split_holdout(pairs[::-1], 0.1)
    _, held_grown = split_holdout(pairs + [Pair(Path(f"img/new{i}.jpg"), "x") for i in range(500)], 0.1)

    assert {p.image for p in held} == {p.image for p in held_reversed}
    assert {p.image for p in held} <= {p.image for p in held_grown}
    assert not {p.image for p in held} & {p.image for p in train}
    assert 150 < len(held) < 250  # about 10%


def test_held_out_split_does_not_depend_on_where_the_dataset_lives(tmp_path: Path) -> None:
    names = [f"img/{i}.jpg" for i in range(400)]
    here = [Pair(tmp_path / "a" / n, n) for n in names]
    moved = [Pair(tmp_path / "elsewhere" / "b" / n, n) for n in names]
    _, held_here = split_holdout(here, 0.1, base=tmp_path / "a")
    _, held_moved = split_holdout(moved, 0.1, base=tmp_path / "elsewhere" / "b")
    assert held_here and [p.caption for p in held_here] == [p.caption for p in held_moved]
