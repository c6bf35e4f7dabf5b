"""Make the small real-EM fixture in ``tests/data/em`` from ``../shared/em_data``.

Run once by a maintainer (the output is committed); tests never run it::

    python tests/data/make_fixture.py [SOURCE_EM_DATA]   # default: ../shared/em_data

The crops are whole chunks of the source layers, copied byte for byte (no decoding, no
re-encoding: the JPEG and compressed_segmentation bytes are the originals), with each
scale's ``info`` entry narrowed to the chunks kept. So the fixture is real data read
through the same codecs as the full volumes, and the script is deterministic (the same
source gives identical files; ``--check`` compares an existing fixture with a fresh one).

* medulla_fib image + segmentation (CC-BY, FlyEM): all of x and y (250 x 250), z 64..128
  (one chunk row), all three scales (10, 20, 40 nm in x/y).
* pinky40 segmentation (BSD-3, cloud-volume test data): x, y 256..512, z 64..128 at
  8 x 8 x 40 nm and the same box at 16 x 16 x 40 nm (its 32 nm chunks cover far more than
  the box, so that scale is left out).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "em"
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "em_data"

# layer -> (box lo, box hi at mip 0 in voxels, scales to keep)
CROPS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], int]] = {
    "medulla_fib/image": ((0, 0, 64), (250, 250, 128), 3),
    "medulla_fib/segmentation": ((0, 0, 64), (250, 250, 128), 3),
    "pinky40/segmentation": ((256, 256, 64), (512, 512, 128), 2),
}


def _scale_box(scale: dict, mip0: dict, lo, hi) -> tuple[list[int], list[int]]:
    """The mip-0 box in this scale's voxels (rounded outwards), clipped to the scale."""
    f = [s // m for s, m in zip(scale["resolution"], mip0["resolution"])]
    off, size = scale["voxel_offset"], scale["size"]
    slo = [max(o, lo_ // fi) for o, lo_, fi in zip(off, lo, f)]
    shi = [min(o + s, -(-hi_ // fi)) for o, s, hi_, fi in zip(off, size, hi, f)]
    return slo, shi


def _chunk_names(scale: dict, lo, hi) -> list[str]:
    """Names of the source chunks that make up [lo, hi), checking that they tile it exactly."""
    (cx, cy, cz) = scale["chunk_sizes"][0]
    off, size = scale["voxel_offset"], scale["size"]
    end = [o + s for o, s in zip(off, size)]
    for d, c in enumerate((cx, cy, cz)):
        # The crop must start on the source's chunk grid and end on it or at the layer's end,
        # or a kept chunk would hold voxels outside the new bounds.
        if (lo[d] - off[d]) % c or ((hi[d] - off[d]) % c and hi[d] != end[d]):
            raise SystemExit(f"box {lo}..{hi} is not chunk-aligned in scale {scale['key']}")
    names = []
    for x in range(lo[0], hi[0], cx):
        for y in range(lo[1], hi[1], cy):
            for z in range(lo[2], hi[2], cz):
                a = (x, y, z)
                b = [min(v + c, e) for v, c, e in zip(a, (cx, cy, cz), end)]
                names.append("_".join(f"{p}-{q}" for p, q in zip(a, b)))
    return names


def crop_layer(src: Path, dst: Path, lo, hi, n_scales: int) -> None:
    info = json.loads((src / "info").read_text())
    scales = info["scales"][:n_scales]
    dst.mkdir(parents=True)
    for scale in scales:
        slo, shi = _scale_box(scale, scales[0], lo, hi)
        names = _chunk_names(scale, slo, shi)
        (dst / scale["key"]).mkdir()
        for name in names:
            # Chunks may be stored gzip'd (``.gz``), as cloud-volume writes them by default.
            for cand in (name, name + ".gz"):
                if (src / scale["key"] / cand).is_file():
                    # copyfile, not copy2: the output gets the maker's umask, not the
                    # source's read-only mode.
                    shutil.copyfile(src / scale["key"] / cand, dst / scale["key"] / cand)
                    break
            else:
                raise SystemExit(f"missing chunk {src / scale['key'] / name}")
        scale["voxel_offset"] = slo
        scale["size"] = [h - l_ for l_, h in zip(slo, shi)]
    info["scales"] = scales
    (dst / "info").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    prov = json.loads((src / "provenance").read_text())
    prov.setdefault("processing", []).append(
        {
            "method": {
                "task": "tests/data/make_fixture.py: whole source chunks copied byte for byte",
                "box_mip0": [list(lo), list(hi)],
                "scales_kept": [s["key"] for s in scales],
            }
        }
    )
    (dst / "provenance").write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")


def make(source: Path, out: Path) -> None:
    precomputed = out / "precomputed"
    for layer, (lo, hi, n) in CROPS.items():
        crop_layer(source / "precomputed" / layer, precomputed / layer, lo, hi, n)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    p.add_argument(
        "--check",
        action="store_true",
        help="compare tests/data/em with a fresh crop; change nothing",
    )
    args = p.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            make(args.source, Path(tmp))
            same = _same_tree(Path(tmp) / "precomputed", OUT / "precomputed")
        print("fixture matches the source" if same else "fixture differs from a fresh crop")
        return 0 if same else 1
    if (OUT / "precomputed").exists():
        shutil.rmtree(OUT / "precomputed")
    make(args.source, OUT)
    print(f"wrote {OUT / 'precomputed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
