"""Write imagery_gui/resources/palettes.json from the installed seaborn and matplotlib.

The viewer and ``composite_overlay`` colour segments as seaborn does, but importing seaborn
(with pandas and matplotlib) costs about 1.5 s and 190 MiB at start. husl and hls are
computed without it (``imagery_gui/model/_husl.py``); the common named palettes come from
this table: seaborn's own hex lists, and the colour lookup tables of matplotlib's
qualitative colormaps and of a few popular continuous ones, as float64 values (JSON floats
round-trip exactly). Other names still go through seaborn, imported when first used.
``tests/model/test_palette.py`` checks the table against seaborn.

    python resources/make_palettes.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import seaborn  # registers rocket, mako, flare, crest, vlag, icefire with matplotlib
from seaborn.palettes import MPL_QUAL_PALS, SEABORN_PALETTES

OUT = Path(__file__).resolve().parents[1] / "imagery_gui" / "resources" / "palettes.json"

#: Continuous colormaps kept in the table (seaborn's and matplotlib's best known).
CONTINUOUS = [
    "viridis",
    "plasma",
    "inferno",
    "magma",
    "cividis",
    "rocket",
    "mako",
    "flare",
    "crest",
    "vlag",
    "icefire",
    "Spectral",
    "coolwarm",
    "RdBu",
    "cubehelix",
    "turbo",
]


def main() -> None:
    cmaps = {}
    for name in list(MPL_QUAL_PALS) + CONTINUOUS:
        cmap = mpl.colormaps[name]
        cmap._init()  # the lookup table Colormap.__call__ indexes
        lut = cmap._lut[: cmap.N, :3]
        cmaps[name] = {
            "qualitative": MPL_QUAL_PALS.get(name, 0),
            "lut": [[float(v) for v in row] for row in lut],
        }
    table = {
        "generated_by": "resources/make_palettes.py",
        "seaborn": seaborn.__version__,
        "matplotlib": mpl.__version__,
        "seaborn_palettes": {k: list(v) for k, v in SEABORN_PALETTES.items()},
        "colormaps": cmaps,
    }
    OUT.write_text(json.dumps(table, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
