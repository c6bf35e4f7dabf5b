"""Contact sheets: one layout for batch (figures on disk) and the gallery (tiles in memory).

The figures are real: ``imagery_gui.batch`` of demo sites read by cloud-volume. The sheet made
from them in memory must equal batch's file-based sheet pixel for pixel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagery_gui.model.batch import write_contact_sheet
from imagery_gui.model.sheet import contact_sheet, save_contact_sheet


def _demo_figures(demo, folder: Path, n: int) -> list[tuple[str, Path]]:
    import imagery_gui

    lines = Path(demo.synapses).read_text().splitlines()
    table = folder / "sites.csv"
    table.write_text("\n".join(lines[: n + 1]) + "\n")
    frame = imagery_gui.batch(
        folder / "out", table, demo=True, size=(64, 48), workers=0, outline=True,
        scale_bar=True,
    )  # fmt: skip
    assert set(frame.status) == {"done"}
    return [(str(sid), folder / "out" / f) for sid, f in zip(frame.id, frame.file)]


def _rgba(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def test_in_memory_sheet_equals_batch_sheet_pixel_for_pixel(demo, tmp_path):
    figures = _demo_figures(demo, tmp_path, 5)
    on_disk = write_contact_sheet(str(tmp_path / "out"), [(s, str(p)) for s, p in figures])
    meta = json.loads(figures[0][1].with_suffix(".json").read_text())
    nm_per_px = float(meta["pixel_size_nm"][0])
    # The gallery holds RGBA arrays (the renderer's output), not files.
    tiles = [(sid, _rgba(path)) for sid, path in figures]
    in_memory = contact_sheet(tiles, nm_per_px)
    with Image.open(on_disk) as im:
        assert im.size == in_memory.size
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(in_memory))
        assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)
    # 5 figures: 3 columns, 2 rows, and the scale bar strip below them.
    assert in_memory.size == (3 * 64 + 4 * 6, 2 * (48 + 14) + 3 * 6 + 40)
    # The scale bar is there: the footer strip is not blank.
    footer = np.asarray(in_memory)[-40:]
    assert (footer != 255).any()


def test_sheet_layout_options_and_saved_dpi(tmp_path):
    rng = np.random.default_rng(3)
    tiles = [(f"site {k}", rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)) for k in range(5)]
    tiles.append(("small", Image.new("RGB", (20, 10), (9, 9, 9))))  # a smaller tile
    sheet = contact_sheet(tiles, None, spacing=2, columns=6)
    assert sheet.size == (6 * 40 + 7 * 2, 30 + 14 + 2 * 2)  # one row, no scale bar
    x0 = 2 + 2 * (40 + 2)
    assert np.array_equal(np.asarray(sheet)[2 + 14 : 2 + 14 + 30, x0 : x0 + 40], tiles[2][1])
    path = save_contact_sheet(sheet, tmp_path / "sheet.png")
    with Image.open(path) as im:
        assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)
        assert np.array_equal(np.asarray(im), np.asarray(sheet))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]  # no temporary left
    path = save_contact_sheet(sheet, tmp_path / "sheet72.png", dpi=72)
    with Image.open(path) as im:
        assert tuple(round(v) for v in im.info["dpi"]) == (72, 72)
    with pytest.raises(ValueError, match="at least one figure"):
        contact_sheet([], 4.0)
    with pytest.raises(ValueError, match="uint8"):
        contact_sheet([("a", np.zeros((4, 4), np.float32))], None)
