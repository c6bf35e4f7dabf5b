"""Batch figures against an ImageryClient loop over the same sites, in the same run.

For each volume and its synapse table, 256x256 figures centred on every site:

* **ImageryClient loop** (the real ``imageryclient`` package, the hand-written script
  batch replaces): ``image_and_segmentation_cutout(site, split_segmentations=True,
  bbox_size=(256, 256), root_ids=[pre, post])``, ``composite_overlay(segs,
  imagery=image)``, save a PNG; one site after another in one process (no glyphs: it
  has none).
* **imagery-gui batch** (its Python API: ``imagery_gui.batch``) in this process
  (``workers=0``), on a LocalCluster of 1 worker process and of N (the CPU count): wall
  time of the whole call, cluster start-up included, fresh output folder each time, each
  call in a fresh process that runs no other thread (a script: the workers are forked
  from it); and of N beside another thread (a notebook's kernel: the workers come from
  the fork server, which starts in every run).

Volumes: the demo (4 nm JPEG image in 128x128x16 chunks, 8 nm segmentation; its synapse
table, 300 sites at 4x4x40 nm) and MICrONS pinky40's real segmentation (8 nm,
128x128x64 chunks) under a 4 nm image made from it (256x256x4 chunks; bench_api's), with
synapses made from its contacts (``model.contacts``, 300 sites).

A third case, ``--density real`` (or ``both``): pinky40's whole segmentation (8 x 8 x
20 um) under an 8 nm image made from it in 128x128x16 JPEG chunks, with synapses made from
its contacts at about 1 per um^3, the density of synapses in cortex: a figure shows its
own site and one or two neighbours, and shares few chunks with the next figures, where
the dense tables above draw 67-221 glyphs a figure and share most of their chunks.

    python benchmarks/bench_batch.py [--ic-sites N] [--density dense|real|both]
        [--json benchmarks/results/batch.json]

``--no-annotate``: batch draws no site glyphs, so its figures show what the loop's do.
``--halves``: also two in-process batches at once, each on half the sites (the two halves
of the Morton order, each in its own process, no cluster): what the machine's two CPUs
give at best, the ceiling of a two-worker batch.
``--plan N ...`` only times planning the tasks of N synthetic synapses (the box query per
task: ``SiteIndex`` against ``SiteTable.in_box`` over the whole table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])

SIZE = 256


def demo_case(work: Path, n: int) -> tuple[str, str, Path]:
    """The demo and its synapse table (300 sites), or with ``n`` > 300 synapses made from
    the contacts of its segmentation as the demo's own are (``model.contacts``)."""
    from imagery_gui.model.demo import ensure_demo

    demo = ensure_demo()
    assert demo.synapses is not None
    if n <= 300:
        return demo.image_source, demo.segmentation_source, Path(demo.synapses)
    from cloudvolume import CloudVolume

    from imagery_gui.model.contacts import synapse_frame, touching_contacts

    cv = CloudVolume(demo.segmentation_source.replace("precomputed://", ""), progress=False)
    lo = [int(v) for v in cv.bounds.minpt]
    labels = np.asarray(cv[cv.bounds])[..., 0]
    contacts = touching_contacts(labels, max_sites=4 * n, seed=5, z_spacing=1)
    df = synapse_frame(contacts, label_offset=lo, factor=(2, 2, 1), first_id=600000001, seed=6)
    table = work / f"demo_synapses_{n}.csv"
    df.head(n).to_csv(table, index=False)
    return demo.image_source, demo.segmentation_source, table


def pinky_case(work: Path, n: int) -> tuple[str, str, Path] | None:
    from bench_api import pinky_volume

    from tests.helpers.volumes import em_data_dir

    em = em_data_dir()
    if em is None:
        return None
    img, seg, _ = pinky_volume(em)
    table = work / "pinky_synapses.csv"
    from cloudvolume import CloudVolume

    from imagery_gui.model.contacts import synapse_frame, touching_contacts

    labels = np.asarray(
        CloudVolume(seg.replace("precomputed://", ""), progress=False)[0:1024, 0:1024, 198:202]
    )[..., 0]
    contacts = touching_contacts(labels, max_sites=max(3000, 4 * n), seed=5, z_spacing=1)
    df = synapse_frame(
        contacts, label_offset=(0, 0, 198), factor=(2, 2, 1), first_id=500000001, seed=6
    )
    ctr = np.stack(df.ctr_pt_position.to_numpy())
    half = SIZE // 2
    inside = (ctr[:, :2] >= half).all(axis=1) & (ctr[:, :2] < 2048 - half).all(axis=1)
    df = df[inside].head(n)
    df.to_csv(table, index=False)
    return img, seg, table


#: Sites per cubic micrometre of the realistic-density case: about the synapse density of
#: mouse cortex (roughly 1 per um^3), so a 256x256 figure at 8 nm (2 x 2 um, the glyphs'
#: fade range of 5 sections = 0.2 um) shows its own site and about one neighbour.
REAL_DENSITY = 1.0


def pinky_full_image(em: Path) -> str:
    """An 8 nm image made from all of pinky40's segmentation (1024x1024x512 at 8x8x40 nm:
    8 x 8 x 20 um), in 128x128x16 JPEG chunks (the demo's layout), made once and cached."""
    from cloudvolume import CloudVolume

    from tests.helpers.volumes import image_from_labels

    folder = Path.home() / ".cache" / "imagery-gui" / "bench" / "pinky40_image_8nm_full"
    if (folder / "done").is_file():
        return f"precomputed://file://{folder}"
    shutil.rmtree(folder, ignore_errors=True)
    seg = CloudVolume(f"file://{em / 'precomputed' / 'pinky40' / 'segmentation'}", progress=False)
    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type="image",
        data_type="uint8",
        encoding="jpeg",
        resolution=[8, 8, 40],
        voxel_offset=[0, 0, 0],
        chunk_size=[128, 128, 16],
        volume_size=[1024, 1024, 512],
    )
    out = CloudVolume(f"file://{folder}", info=info, progress=False, compress=False)
    out.commit_info()
    rng = np.random.default_rng(0)
    for z in range(0, 512, 64):
        labels = np.asarray(seg[0:1024, 0:1024, z : z + 64])[..., 0]
        out[0:1024, 0:1024, z : z + 64] = image_from_labels(labels, 1, rng)
    (folder / "done").write_text("")
    return f"precomputed://file://{folder}"


def sparse_case(work: Path, n: int) -> tuple[str, str, Path] | None:
    """pinky40's whole segmentation under an 8 nm image made from it, with synapses made
    from its contacts at about REAL_DENSITY per um^3 through the whole volume (at most
    ``n``, figures inside the volume): what a real synapse table looks like in a figure."""
    from cloudvolume import CloudVolume

    from imagery_gui.model.contacts import synapse_frame, touching_contacts
    from tests.helpers.volumes import em_data_dir

    em = em_data_dir()
    if em is None:
        return None
    img = pinky_full_image(em)
    seg_path = em / "precomputed" / "pinky40" / "segmentation"
    seg = CloudVolume(f"file://{seg_path}", progress=False)
    half = SIZE // 2
    slab_um3 = (1024 - SIZE) * (1024 - SIZE) * 64 * 8 * 8 * 40 / 1e9
    per_slab = max(1, round(slab_um3 * REAL_DENSITY))
    frames = []
    for k, z in enumerate(range(0, 512, 64)):
        labels = np.asarray(seg[half : 1024 - half, half : 1024 - half, z : z + 64])[..., 0]
        contacts = touching_contacts(labels, max_sites=per_slab, seed=5 + k, z_spacing=1)
        frames.append(
            synapse_frame(
                contacts,
                label_offset=(half, half, z),
                factor=(2, 2, 1),  # 4x4x40 nm points, as CAVE gives them
                first_id=700000001 + 10000 * k,
                seed=6 + k,
            )
        )
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    df = df.iloc[np.random.default_rng(7).permutation(len(df))].head(n)
    table = work / "pinky_sparse_synapses.csv"
    df.to_csv(table, index=False)
    return img, f"precomputed://file://{seg_path}", table


def ic_loop(img: str, seg: str, table, rows: list[int], out: Path) -> float:
    import imageryclient as ic

    client = ic.ImageryClient(image_source=img, segmentation_source=seg)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i in rows:
        c = table.centers[i] * np.asarray(table.resolution) / np.asarray(client.resolution)
        ctr = [int(v) for v in np.floor(c)]
        roots = [int(v) for v in (table.pre_root[i], table.post_root[i]) if int(v)]
        image, segs = client.image_and_segmentation_cutout(
            ctr, split_segmentations=True, bbox_size=(SIZE, SIZE), root_ids=roots
        )
        ic.composite_overlay(segs, imagery=image).save(out / f"{table.id_of(i)}.png")
    return time.perf_counter() - t0


#: One batch call in a process of its own: the modules a notebook has loaded are imported
#: first, then the call is timed whole, so a local cluster's start (its fork server's
#: imports included) counts in every run, as in a user's first batch of a session.
DRIVER = """
import json, sys, threading, time
import cloudvolume, pandas
import imagery_gui, imagery_gui.batch_cli, imagery_gui.model.batch
a = json.loads(sys.argv[1])
if a["beside_thread"]:  # as in a notebook's kernel: local workers come from the fork server
    threading.Thread(target=threading.Event().wait, daemon=True).start()
t0 = time.perf_counter()
frame = imagery_gui.batch(
    a["out"], a["sites"], image_source=a["img"], segmentation_source=a["seg"],
    size=(a["size"], a["size"]), workers=a["workers"], no_annotate=not a["annotate"],
    sites_resolution=[4, 4, 40],  # every case's table is in 4x4x40 nm voxels, as CAVE's
)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "not_done": int((frame.status != "done").sum())}))
"""


def batch_run(
    img: str,
    seg: str,
    sites: Path,
    out: Path,
    workers: int,
    annotate: bool = True,
    beside_thread: bool = False,
) -> float:
    """Seconds of one ``imagery_gui.batch`` call, in a fresh process, fresh output folder;
    ``beside_thread``: with another thread running in that process, as in a notebook's
    kernel (a local cluster's workers then come from the fork server, not forked from it)."""
    import subprocess

    shutil.rmtree(out, ignore_errors=True)
    args = {"out": str(out), "sites": str(sites), "img": img, "seg": seg, "size": SIZE}
    args.update(workers=workers, annotate=annotate, beside_thread=beside_thread)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"batch failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["not_done"] == 0, result
    return float(result["seconds"])


def halves_run(img: str, seg: str, sites: Path, work: Path, annotate: bool = True) -> float:
    """Seconds of the table's sites made by two batch calls at once, each in its own process
    and in that process (``workers=0``: no cluster), on the two halves of the Morton order:
    what this machine's two CPUs give with no cluster to start or feed (the ceiling of a
    two-worker batch). The later of the two calls' times."""
    import subprocess

    import pandas as pd

    from imagery_gui.model.batch import morton_order
    from imagery_gui.model.sites import read_sites

    frame = pd.read_csv(sites, dtype=str, keep_default_na=False)
    table = read_sites(sites, default_resolution=(4, 4, 40))
    assert len(table) == len(frame), "every row of the bench tables is a site"
    order = morton_order(table.centers * np.asarray(table.resolution))
    procs = []
    for k, rows in enumerate((order[: len(order) // 2], order[len(order) // 2 :])):
        part = work / f"half_{k}.csv"
        frame.iloc[np.sort(rows)].to_csv(part, index=False)
        out = work / f"b_half_{k}"
        shutil.rmtree(out, ignore_errors=True)
        args = {"out": str(out), "sites": str(part), "img": img, "seg": seg, "size": SIZE}
        args.update(workers=0, annotate=annotate, beside_thread=False)
        cmd = [sys.executable, "-c", DRIVER, json.dumps(args)]
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    seconds = []
    for proc in procs:
        out_text, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"batch failed: {err[-2000:]}")
        result = json.loads(out_text.strip().splitlines()[-1])
        assert result["not_done"] == 0, result
        seconds.append(float(result["seconds"]))
    return max(seconds)


def glyphs_per_figure(out: Path) -> float:
    """Mean number of sites drawn per figure (from the figures' provenance)."""
    counts = [
        len(json.loads(f.read_text())["sites"]["drawn_ids"]) for f in sorted(out.glob("*.json"))
    ]
    return float(np.mean(counts)) if counts else 0.0


def plan_bench(n: int) -> dict:
    """Planning a batch of ``n`` synapses spread over 100 x 100 um (2,000 sections): the
    box query of every task of 64 sites through ``SiteIndex`` (what ``make_tasks`` uses)
    against ``SiteTable.in_box`` over the whole table (what it did), the latter timed on
    20 tasks and scaled to all. The answers are compared on those 20."""
    import pandas as pd

    from imagery_gui.model.sites import SiteIndex, read_sites

    rng = np.random.default_rng(0)
    c = np.c_[rng.uniform(0, 25000, (n, 2)), rng.uniform(0, 2000, n)].astype(int)
    frame = pd.DataFrame(
        {
            "ctr_pt_position": list(c),
            "pre_pt_position": list(c + rng.integers(-20, 20, (n, 3))),
            "post_pt_position": list(c - rng.integers(-20, 20, (n, 3))),
        }
    )
    table = read_sites(frame, resolution=(4, 4, 40))
    tasks = max(1, n // 64)
    half = np.array([2000.0, 2000.0, 200.0])  # a task's box (nm): 1 um figures and a margin
    picks = rng.integers(0, n, tasks)
    boxes = [(c[i] * [4, 4, 40] - half, c[i] * [4, 4, 40] + half) for i in picks]
    t0 = time.perf_counter()
    whole = [table.in_box(lo, hi, (1, 1, 1)) for lo, hi in boxes[:20]]
    t_whole = (time.perf_counter() - t0) / len(whole) * tasks
    t0 = time.perf_counter()
    index = SiteIndex(table)
    indexed = [index.in_box(lo, hi, (1, 1, 1)) for lo, hi in boxes]
    t_index = time.perf_counter() - t0
    assert all(np.array_equal(a, b) for a, b in zip(whole, indexed))
    return {"sites": n, "tasks": tasks, "in_box_whole_table_s": t_whole, "site_index_s": t_index}


def remote_bench(latencies: list[float], n_sites: int, ic_sites: int) -> list[dict]:
    """The real-density case read over the project's loopback HTTP server (its own process)
    at each latency: the ImageryClient loop, and batch with a worker per CPU."""
    from _remote import http_server

    from imagery_gui.model.sites import read_sites

    work = Path(tempfile.mkdtemp(prefix="bench-batch-remote-"))
    sparse = sparse_case(work, n_sites)
    if sparse is None:
        raise SystemExit("--remote needs ../shared/em_data (pinky40)")
    img, seg, sites = sparse
    root = work / "served"  # the server serves one folder: both layers, hard links if it can
    for name, src in (("image", img), ("segmentation", seg)):
        path = src.split("file://", 1)[1]
        try:
            shutil.copytree(path, root / name, copy_function=os.link)
        except OSError:
            shutil.rmtree(root / name, ignore_errors=True)
            shutil.copytree(path, root / name)
    table = read_sites(sites, default_resolution=(4, 4, 40))
    n = len(table)
    ncpu = os.cpu_count() or 1
    out = []
    for ms in latencies:
        with http_server(root, latency_ms=ms) as url:
            r_img, r_seg = f"precomputed://{url}/image", f"precomputed://{url}/segmentation"
            rows = list(range(min(n, ic_sites or n)))
            t_ic = ic_loop(r_img, r_seg, table, rows, work / "ic")
            row = {"latency_ms": ms, "sites": n, "imageryclient_sites": len(rows)}
            row["imageryclient_fps"] = len(rows) / t_ic
            row[f"batch_{ncpu}_workers_fps"] = n / batch_run(r_img, r_seg, sites, work / "b", ncpu)
        out.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(f"| latency | ImageryClient loop | batch, {ncpu} workers | vs loop |")
    print("|---|---|---|---|")
    for r in out:
        b = r[f"batch_{ncpu}_workers_fps"]
        print(f"| {r['latency_ms']:g} ms | {r['imageryclient_fps']:.2f} fig/s | {b:.1f} fig/s | "
              f"{b / r['imageryclient_fps']:.1f}x |")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--plan",
        type=int,
        nargs="+",
        metavar="N",
        help="only time planning the tasks of N synthetic synapses (e.g. 30000 300000)",
    )
    ap.add_argument("--ic-sites", type=int, default=0, help="sites for the IC loop (0: all)")
    ap.add_argument("--sites", type=int, default=300, help="sites per volume (synapses)")
    ap.add_argument(
        "--no-annotate",
        action="store_true",
        help="batch draws no glyphs: figures with what the ImageryClient loop's show",
    )
    ap.add_argument(
        "--density",
        choices=("dense", "real", "both"),
        default="dense",
        help="dense: the demo's and pinky40's dense contact tables (tens to hundreds of "
        "glyphs a figure); real: pinky40 whole, sites at about 1 per um^3 (a figure shows "
        "1-3), 8 nm figures over 128x128x16 image chunks; both",
    )
    ap.add_argument(
        "--halves",
        action="store_true",
        help="also time two in-process batches at once on the two halves of the Morton "
        "order (no cluster): what two CPUs give at best",
    )
    ap.add_argument(
        "--remote",
        type=float,
        nargs="+",
        metavar="MS",
        help="only the real-density case over a loopback HTTP server with these latencies "
        "(ms): the ImageryClient loop against batch with a worker per CPU",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.remote:
        rows = remote_bench(args.remote, args.sites, args.ic_sites)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                            "results": rows}, indent=2) + "\n"
            )  # fmt: skip
        return
    if args.plan:
        print("| sites | tasks | in_box over the whole table | SiteIndex | ratio |")
        print("|---|---|---|---|---|")
        for n in args.plan:
            r = plan_bench(n)
            ratio = r["in_box_whole_table_s"] / r["site_index_s"]
            print(f"| {n} | {r['tasks']} | {r['in_box_whole_table_s']:.1f} s | "
                  f"{r['site_index_s']:.2f} s | {ratio:.0f}x |", flush=True)  # fmt: skip
        return
    from imagery_gui.model.sites import read_sites

    ncpu = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    cases: dict[str, tuple[str, str, Path]] = {}
    if args.density in ("dense", "both"):
        cases["demo (128x128x16 chunks)"] = demo_case(work, args.sites)
        pinky = pinky_case(work, args.sites)
        if pinky is not None:
            cases["pinky40 seg + made image (128x128x64 / 256x256x4 chunks)"] = pinky
    if args.density in ("real", "both"):
        sparse = sparse_case(work, args.sites)
        if sparse is None:
            print("note: ../shared/em_data not found; the real-density case skipped")
        else:
            cases["pinky40 whole, real density, 8 nm (128x128x64 / 128x128x16 chunks)"] = sparse
    results = []
    for name, (img, seg, sites) in cases.items():
        table = read_sites(sites, default_resolution=(4, 4, 40))
        n = len(table)
        rows = list(range(n if not args.ic_sites else min(n, args.ic_sites)))
        t_ic = ic_loop(img, seg, table, rows, work / "ic")
        ic_rate = len(rows) / t_ic
        row = {"volume": name, "sites": n, "imageryclient_sites": len(rows)}
        row["batch_glyphs"] = not args.no_annotate
        row["imageryclient_fps"] = ic_rate
        for label, w in (("in_process", 0), ("1_worker", 1), (f"{ncpu}_workers", ncpu)):
            dt = batch_run(img, seg, sites, work / f"b_{w}", w, annotate=not args.no_annotate)
            row[f"batch_{label}_fps"] = n / dt
            if w == 0:
                row["glyphs_per_figure"] = glyphs_per_figure(work / f"b_{w}")
        dt = batch_run(img, seg, sites, work / "b_nb", ncpu, not args.no_annotate, True)
        row[f"batch_{ncpu}_workers_beside_a_thread_fps"] = n / dt
        if args.halves:
            dt = halves_run(img, seg, sites, work, annotate=not args.no_annotate)
            row["two_halves_at_once_fps"] = n / dt
        results.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(
        f"| volume | sites | glyphs a figure | ImageryClient loop | batch, in process | batch, 1 worker | "
        f"batch, {ncpu} workers | vs ImageryClient ({ncpu} workers) | {ncpu} vs 1 worker | "
        f"{ncpu} workers beside another thread (a notebook) | vs ImageryClient |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        best = r[f"batch_{ncpu}_workers_fps"]
        nb = r[f"batch_{ncpu}_workers_beside_a_thread_fps"]
        print(
            f"| {r['volume']} | {r['sites']} | {r['glyphs_per_figure']:.1f} | "
            f"{r['imageryclient_fps']:.2f} fig/s | "
            f"{r['batch_in_process_fps']:.1f} fig/s | {r['batch_1_worker_fps']:.1f} fig/s | "
            f"{best:.1f} fig/s | {best / r['imageryclient_fps']:.1f}x | "
            f"{best / r['batch_1_worker_fps']:.2f}x | {nb:.1f} fig/s | "
            f"{nb / r['imageryclient_fps']:.1f}x |"
        )
    if args.halves:
        print("\n| volume | two halves at once, no cluster | vs ImageryClient | "
              f"batch, {ncpu} workers, share of it |")  # fmt: skip
        print("|---|---|---|---|")
        for r in results:
            h = r["two_halves_at_once_fps"]
            print(f"| {r['volume']} | {h:.1f} fig/s | {h / r['imageryclient_fps']:.1f}x | "
                  f"{r[f'batch_{ncpu}_workers_fps'] / h:.0%} |")  # fmt: skip
        print()
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": platform.platform(), "cpus": ncpu, "results": results},
                       indent=2) + "\n"
        )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
