"""The compatible Python API against ``imageryclient`` 1.0.4, in the same run.

Two measurements, each on the demo volume (4 nm JPEG image, 8 nm segmentation) and on real
MICrONS pinky40 segmentation (8 nm) under a 4 nm image made from it (written once to
``~/.cache/imagery-gui/bench/pinky40_image``):

1. ``composite_overlay(segs, imagery=image, **style)`` on each library's own
   ``image_and_segmentation_cutout(ctr, split_segmentations=True, bbox_size=(1024, 1024))``
   output, in this process: medians of ``--repeats`` runs (ImageryClient) and 3x as many
   (imagery-gui), pixels compared.
2. The MICrONS documentation's script (``benchmarks/microns_script.py``: import,
   ``ImageryClient``, the split cutout, ``composite_overlay(..., palette='husl')``, save a
   PNG) as a fresh process, ImageryClient and imagery-gui run in turn (pairs), wall time,
   CPU time and peak resident memory (``ru_maxrss`` of the finished child), medians; the
   two PNGs compared.

    python benchmarks/bench_api.py [--repeats 3] [--runs 3] [--json benchmarks/results/api.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STYLES = {
    "fill (alpha 0.2)": {},
    "outline width 15 out + merge": dict(outline=True, width=15, side="out", merge_outline=True),
    "outline width 3 in, no merge": dict(outline=True, width=3, side="in", merge_outline=False),
}


def _median_time(repeats: int, fn, *args, **kwargs) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def pinky_volume(em_data: Path) -> tuple[str, str, tuple[int, int, int]]:
    """pinky40's own segmentation layer and a 4 nm image made from it (z 198-201)."""
    from imagery_gui.model.writer import write_precomputed
    from tests.helpers.volumes import image_from_labels

    seg = em_data / "precomputed" / "pinky40" / "segmentation"
    folder = Path.home() / ".cache" / "imagery-gui" / "bench" / "pinky40_image"
    if not (folder / "info").is_file():
        from cloudvolume import CloudVolume

        cv = CloudVolume(f"file://{seg}", progress=False)
        labels = np.asarray(cv[0:1024, 0:1024, 198:202])[..., 0]
        image = image_from_labels(labels, 2, np.random.default_rng(0))
        write_precomputed(
            folder,
            image,
            layer_type="image",
            resolution=(4, 4, 40),
            voxel_offset=(0, 0, 198),
            chunk_size=(256, 256, 4),
            encoding="jpeg",
            num_mips=3,
        )
    # The densest 1024x1024 view of this image (about 120 segments).
    return f"precomputed://file://{folder}", f"precomputed://file://{seg}", (512, 1536, 200)


def volumes() -> dict[str, tuple[str, str, tuple[int, int, int]]]:
    from imagery_gui.model.demo import ensure_demo
    from tests.helpers.volumes import em_data_dir

    demo = ensure_demo()
    out = {
        "demo volume": (
            demo.image_source,
            demo.segmentation_source,
            tuple(int(v) for v in demo.center),
        )
    }
    em = em_data_dir()
    if em is not None:
        out["pinky40 (real segmentation)"] = pinky_volume(em)
    else:
        print("note: ../shared/em_data not found; pinky40 skipped", file=sys.stderr)
    return out


def composite_rows(name: str, vol, repeats: int) -> list[dict]:
    import imageryclient as icref

    import imagery_gui as ig

    img_src, seg_src, ctr = vol
    kw = dict(image_source=img_src, segmentation_source=seg_src)
    cut = dict(split_segmentations=True, bbox_size=(1024, 1024))
    image, ours = ig.ImageryClient(**kw).image_and_segmentation_cutout(list(ctr), **cut)
    image_r, theirs = icref.ImageryClient(**kw).image_and_segmentation_cutout(list(ctr), **cut)
    # Warm lazy imports outside the timings.
    ig.composite_overlay(ours, imagery=image, outline=True)
    icref.composite_overlay({1: np.ones((4, 4), int)})
    print(f"\n{name}: 1024x1024 view, {len(ours)} segments (composite_overlay on the split cutout)")
    print(f"{'style':32s} {'imageryclient':>14s} {'imagery-gui':>12s} {'ratio':>6s}")
    rows = []
    for sname, style in STYLES.items():
        t_ref, out_ref = _median_time(
            repeats, icref.composite_overlay, theirs, imagery=image_r, **style
        )
        t_new, out_new = _median_time(
            3 * repeats, ig.composite_overlay, ours, imagery=image, **style
        )
        same = np.array_equal(np.asarray(out_ref), np.asarray(out_new))
        print(
            f"{sname:32s} {t_ref * 1e3:11.0f} ms {t_new * 1e3:9.1f} ms {t_ref / t_new:5.0f}x "
            f"{'identical' if same else 'PIXELS DIFFER'}"
        )
        rows.append(
            {
                "dataset": name,
                "segments": len(ours),
                "style": sname,
                "imageryclient_s": t_ref,
                "imagery_gui_s": t_new,
                "ratio": t_ref / t_new,
                "identical_pixels": bool(same),
            }
        )
    return rows


def _run(cmd: list[str], env: dict) -> dict:
    from benchmarks._proc import run_measured  # stdout of the command is not kept

    return run_measured(cmd, env)


def script_row(name: str, vol, runs: int) -> dict:
    img_src, seg_src, ctr = vol
    script = str(ROOT / "benchmarks" / "microns_script.py")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        outs = {lib: str(Path(tmp) / f"{lib}.png") for lib in ("imageryclient", "imagery_gui")}
        args = [img_src, seg_src, ",".join(str(v) for v in ctr)]
        for lib in outs:  # one warm-up each (file cache, .pyc), not counted
            _run([sys.executable, script, lib, *args, outs[lib]], env)
        for _ in range(runs):
            ref = _run([sys.executable, script, "imageryclient", *args, outs["imageryclient"]], env)
            new = _run([sys.executable, script, "imagery_gui", *args, outs["imagery_gui"]], env)
            pairs.append((ref, new))
        from PIL import Image

        same = np.array_equal(
            np.asarray(Image.open(outs["imageryclient"])),
            np.asarray(Image.open(outs["imagery_gui"])),
        )

    def med(side: int, key: str) -> float:
        return statistics.median(p[side][key] for p in pairs)

    row = {
        "dataset": name,
        "runs": runs,
        "imageryclient": {k: med(0, k) for k in ("wall_s", "cpu_s", "peak_mib")},
        "imagery_gui": {k: med(1, k) for k in ("wall_s", "cpu_s", "peak_mib")},
        "wall_ratio_paired": statistics.median(r["wall_s"] / n["wall_s"] for r, n in pairs),
        "memory_fraction": med(1, "peak_mib") / med(0, "peak_mib"),
        "identical_pixels": bool(same),
    }
    r, n = row["imageryclient"], row["imagery_gui"]
    print(
        f"\n{name}: the MICrONS script as a fresh process, median of {runs} pairs\n"
        f"  imageryclient {r['wall_s']:6.2f} s wall {r['cpu_s']:6.2f} s CPU {r['peak_mib']:7.0f} MiB\n"
        f"  imagery-gui   {n['wall_s']:6.2f} s wall {n['cpu_s']:6.2f} s CPU {n['peak_mib']:7.0f} MiB\n"
        f"  {row['wall_ratio_paired']:.1f}x faster (paired), {100 * row['memory_fraction']:.0f}% of "
        f"the memory, {'identical' if same else 'PIXELS DIFFER'}"
    )
    return row


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3, help="ImageryClient runs per style")
    ap.add_argument("--runs", type=int, default=3, help="fresh-process pairs per volume")
    ap.add_argument("--skip-script", action="store_true", help="only the in-process timings")
    ap.add_argument("--skip-composite", action="store_true", help="only the fresh processes")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    results: dict = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "composite": [],
        "script": [],
    }
    vols = volumes()
    if not args.skip_script:
        for name, vol in vols.items():
            results["script"].append(script_row(name, vol, args.runs))
    if not args.skip_composite:
        for name, vol in vols.items():
            results["composite"] += composite_rows(name, vol, args.repeats)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(r["identical_pixels"] for r in results["composite"] + results["script"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
