"""Overlay rendering: imagery-gui's renderer against ``imageryclient.composite_overlay``.

Same inputs, same process, same run: a 1024x1024 view with 150+ segments, from

* real MICrONS pinky40 segmentation (``../shared/em_data``; no EM exists for that crop, so
  the greyscale underneath is made from the labels), and
* the built-in demo volume (4 nm imagery, 8 nm segmentation aligned onto it).

For each style it reports the median time of ImageryClient on its usual input (the dict of
masks from ``split_segmentations=True``), of ``imagery_gui.composite_overlay`` on that same
dict, and of the renderer on the label image (what the viewer, the exporter and the CLI
use), and checks that all three produce identical pixels.

    python benchmarks/bench_render.py [--repeats 3] [--json benchmarks/results/render.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def load_pinky(em_data: Path):
    from cloudvolume import CloudVolume

    cv = CloudVolume(
        f"file://{em_data / 'precomputed' / 'pinky40' / 'segmentation'}", progress=False
    )
    labels_xy = np.asarray(cv[0:1024, 0:1024, 200:201])[..., 0, 0]  # (x, y), real ids
    from tests.helpers.volumes import image_from_labels

    image = image_from_labels(labels_xy[:, :, None], 1, np.random.default_rng(0))[:, :, 0]
    return image, labels_xy


def load_demo():
    import imagery_gui as ig
    from imagery_gui.model.demo import ensure_demo

    demo = ensure_demo()
    client = ig.ImageryClient(
        image_source=demo.image_source, segmentation_source=demo.segmentation_source
    )
    image, labels = client.image_and_segmentation_cutout(
        list(demo.center), bbox_size=(1024, 1024), convert_to_int64=False
    )
    return image, labels


def run(repeats: int) -> dict:
    import imageryclient as icref

    import imagery_gui as ig
    from imagery_gui.model.segments import split_masks
    from tests.helpers.volumes import em_data_dir

    datasets = {}
    em = em_data_dir()
    if em is not None:
        datasets["pinky40 (real segmentation)"] = load_pinky(em)
    else:
        print("note: ../shared/em_data not found; pinky40 skipped", file=sys.stderr)
    datasets["demo volume"] = load_demo()
    # Warm imports (seaborn, matplotlib) outside the timings.
    ig.composite_overlay(np.ones((4, 4), np.uint64))
    icref.composite_overlay({1: np.ones((4, 4), int)})

    results = {"machine": platform.platform(), "python": platform.python_version(), "rows": []}
    for dname, (image, labels_xy) in datasets.items():
        masks = {k: v.T for k, v in split_masks(np.ascontiguousarray(labels_xy.T)).items()}
        print(f"\n{dname}: {labels_xy.shape[0]}x{labels_xy.shape[1]} view, {len(masks)} segments")
        print(
            f"{'style':32s} {'imageryclient':>14s} {'ours, masks':>12s} {'ratio':>6s} {'ours, labels':>13s} {'ratio':>6s}"
        )
        for sname, kw in STYLES.items():
            t_ref, out_ref = _median_time(
                repeats, icref.composite_overlay, masks, imagery=image, **kw
            )
            t_dict, out_dict = _median_time(
                3 * repeats, ig.composite_overlay, masks, imagery=image, **kw
            )
            t_lab, out_lab = _median_time(
                3 * repeats, ig.composite_overlay, labels_xy, imagery=image, **kw
            )
            same = np.array_equal(np.asarray(out_ref), np.asarray(out_dict)) and np.array_equal(
                np.asarray(out_ref), np.asarray(out_lab)
            )
            print(
                f"{sname:32s} {t_ref * 1e3:11.0f} ms {t_dict * 1e3:9.0f} ms {t_ref / t_dict:5.0f}x "
                f"{t_lab * 1e3:10.0f} ms {t_ref / t_lab:5.0f}x  {'identical' if same else 'PIXELS DIFFER'}"
            )
            results["rows"].append(
                {
                    "dataset": dname,
                    "segments": len(masks),
                    "style": sname,
                    "imageryclient_s": t_ref,
                    "ours_masks_s": t_dict,
                    "ours_labels_s": t_lab,
                    "ratio_masks": t_ref / t_dict,
                    "ratio_labels": t_ref / t_lab,
                    "identical_pixels": bool(same),
                }
            )
    return results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="ImageryClient runs per style (ours: 3x)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    results = run(args.repeats)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["identical_pixels"] for r in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
