"""Palette colours without seaborn are seaborn's colours, float for float.

ImageryClient converts with ``int(255 * c)`` (truncation), so only bit-identical floats
guarantee identical pixels: every comparison here is exact equality.
"""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pytest
import seaborn

from imagery_gui.model import palette as pal

TABLE = json.loads((files("imagery_gui") / "resources" / "palettes.json").read_text("utf-8"))
NAMED = sorted(TABLE["seaborn_palettes"]) + sorted(TABLE["colormaps"])
COUNTS = [1, 2, 3, 5, 7, 8, 10, 12, 13, 20, 21, 64, 155, 300]


def _seaborn(n, name, h=pal.DEFAULT_H, l=pal.DEFAULT_L, s=pal.DEFAULT_S):  # noqa: E741
    if name == "husl":
        cols = seaborn.husl_palette(n, h=h, s=s, l=l)
    elif name == "hls":
        cols = seaborn.hls_palette(n, h=h, s=s, l=l)
    else:
        cols = seaborn.color_palette(n_colors=n, palette=name)
    return [tuple(float(v) for v in c[:3]) for c in cols]


@pytest.mark.parametrize("n", COUNTS)
def test_husl_and_hls_defaults(n):
    for name in ("husl", "hls"):
        assert pal.palette_colors(n, name) == _seaborn(n, name)


@pytest.mark.parametrize("h", [0.0, 0.01, 0.25, 0.5, 0.77, 0.999, 1.0, 1.3])
@pytest.mark.parametrize("l", [0.0, 0.2, 0.5, 0.65, 0.9, 1.0])
@pytest.mark.parametrize("s", [0.0, 0.5, 0.8, 1.0])
def test_husl_and_hls_parameters(h, l, s):  # noqa: E741
    for name in ("husl", "hls"):
        for n in (1, 6, 17, 64):
            assert pal.palette_colors(n, name, h=h, l=l, s=s) == _seaborn(n, name, h, l, s)


@pytest.mark.parametrize("name", NAMED)
def test_named_palettes(name):
    for n in COUNTS:
        assert pal.palette_colors(n, name) == _seaborn(n, name), (name, n)


def test_uint8_colours_match_imageryclient_conversion():
    """The pixel colours: ImageryClient's [[int(255 * c) for c in col] for col in colors]."""
    import imageryclient.utils as icu

    for name in ("husl", "hls", "tab10", "deep", "viridis"):
        for n in (5, 155, 534):
            want = np.asarray(icu.colors_to_uint8(_seaborn(n, name)), dtype=np.uint8)
            np.testing.assert_array_equal(pal.color_table(pal.palette_colors(n, name)), want)


def test_other_names_go_through_seaborn():
    for name in ("ch:s=.25,rot=-.25", "light:#5A9", "Blues", "viridis_r", "Set2_d"):
        assert pal.palette_colors(9, name) == _seaborn(9, name)
    with pytest.raises(ValueError, match="unknown palette"):
        pal.palette_colors(3, "no-such-palette")
    with pytest.raises(ValueError, match="unknown palette"):
        pal.check_palette("no-such-palette")
