"""Text read in pictures through the HTTP API: search hits say where their text was found, and an
item returns the text read in each of its units with its boxes (per segment for a video)."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from conftest import save_image, tiny_settings
from glimpse.core.library import Library
from glimpse.indexer.pipeline import Indexer
from glimpse.search.api.app import create_app
from textpics import BUDGET, text_picture
from videos import write_video


def test_search_hits_and_items_carry_the_text_read_in_them(tmp_path, database_url, tiny_encoder):
    media = tmp_path / "media"
    media.mkdir()
    text_picture("HARBOUR", font_size=40).save(media / "sign.jpg", quality=92)
    text_picture("Ferry", font_name="DejaVuSerif-Bold.ttf", angle=6).save(media / "ferry.png")
    save_image(media / "plain.jpg", "blue", size=(120, 90))
    dark = np.asarray(Image.new("RGB", (320, 180), (25, 25, 35)))
    board = np.asarray(text_picture("DEPARTURES", size=(320, 180), font_size=30, background=(200, 200, 60)))
    write_video(media / "quay.mp4", [dark] * 8 + [board] * 6 + [dark] * 4, fps=2)  # the board at 4-7 s
    settings = tiny_settings(tmp_path / "library", database_url, ocr=True, ocr_budget_seconds=BUDGET)
    library = Library(settings)
    try:
        summary = Indexer(library, tiny_encoder, settings).run([media])
    finally:
        library.close()
    assert summary.indexed == 4 and not summary.failed and not summary.warnings

    with TestClient(create_app(settings)) as client:
        body = client.get("/v1/search", params={"q": "harbour", "k": 4}).json()
        top = body["results"][0]
        assert top["path"] == "media/sign.jpg"
        assert top["text_matches"] == [
            {
                "source": "ocr",
                "text": "HARBOUR",
                "snippet": "**HARBOUR**",
                "time": None,
                "unit_id": top["unit_id"],
                "label": "OCR: 'HARBOUR'",
            }
        ]
        assert all(not r["text_matches"] for r in body["results"][1:] if r["path"] == "media/plain.jpg")

        body = client.post("/v1/search", json={"q": "departures board", "k": 4}).json()
        moment = body["results"][0]
        assert moment["path"] == "media/quay.mp4" and moment["start"] <= 5 and moment["end"] >= 6
        match = moment["text_matches"][0]
        assert match["text"] == "DEPARTURES" and 4 <= match["time"] < 7
        assert match["label"] == f"OCR: 'DEPARTURES' at 00:00:{int(match['time']):02d}"

        item = client.get(f"/v1/items/{top['id']}").json()
        [line] = item["units"][0]["text"]
        assert line["text"] == "HARBOUR" and 0.6 <= line["confidence"] <= 1 and line["time"] is None
        xs = [x for x, _ in line["box"]]
        assert len(line["box"]) == 4 and 0 <= min(xs) < 160 < max(xs) <= 320  # centred in 320 px

        video = client.get(f"/v1/items/{moment['id']}").json()
        texts = {(u["start"], u["end"]): [t["text"] for t in u["text"]] for u in video["units"]}
        assert any(t == ["DEPARTURES"] for t in texts.values())
        for (start, end), lines in texts.items():  # only the segments showing the board have it
            assert (lines == ["DEPARTURES"]) == (start < 7 and end > 4), texts
        plain = next(
            r
            for r in client.get("/v1/search", params={"q": "harbour", "k": 4}).json()["results"]
            if r["path"] == "media/plain.jpg"
        )
        assert client.get(f"/v1/items/{plain['id']}").json()["units"][0]["text"] == []
