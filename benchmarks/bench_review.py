"""Review saves: the time of one ``Review.set_verdict`` (the whole file rewritten and renamed;
its fsync runs in a background thread) with 100, 1,000 and 10,000 decisions already in the
file, beside the floor of a
durable save in the same run: the same bytes written to a temporary file, fsynced and
renamed (``io.atomic_open``) with nothing else done. Also the time to resume (open) a
review and to compute a table's identity. Medians of ``--repeat`` saves.

    python benchmarks/bench_review.py [--repeat 41] [--dir /tmp] [--json out.json]

The folder matters: fsync costs what the disk under it costs (tmpfs none at all).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _table(n: int):
    import pandas as pd

    from imagery_gui.model.sites import read_sites

    k = pd.RangeIndex(n)
    frame = pd.DataFrame(
        {
            "id": 900_000_000_000_000_001 + k,
            "ctr_pt_position": [f"[{100 + i} {200 + i} {i % 50}]" for i in range(n)],
            "pre_pt_supervoxel_id": 88_946_092_000_000_007 + 2 * k,
            "post_pt_supervoxel_id": 88_946_092_000_000_008 + 2 * k,
        }
    )
    return read_sites(frame, resolution=(4, 4, 40))


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 3)


def main(argv: list[str] | None = None) -> int:
    from imagery_gui.model.io import atomic_open
    from imagery_gui.model.review import DEFAULT_VERDICTS, Review, table_identity

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=41)
    ap.add_argument("--dir", default=None, help="folder of the review files (default: a temp dir)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out: dict[str, object] = {"repeat": args.repeat}
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        table = _table(10_000)
        for n in (100, 1_000, 10_000):
            path = Path(tmp) / f"review-{n}.csv"
            review = Review.open(table, path)
            for i in range(n):
                # Only the last decision is saved to disk here; the rest fill memory fast.
                review._put(i, review._decisions.get(i) or _decision(review, i, "real", ""))
            review.set_note(0, 'a note, with "quotes"\nand two lines')  # written now
            saves = []
            for k in range(args.repeat):
                t0 = time.perf_counter()
                review.set_verdict(n // 2, DEFAULT_VERDICTS[k % 3])
                saves.append(time.perf_counter() - t0)
            data = path.read_bytes()
            floor = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                with atomic_open(Path(tmp) / "floor.csv", "wb", overwrite=True) as fh:
                    fh.write(data)
                floor.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            resumed = Review.open(table, path)
            open_s = time.perf_counter() - t0
            assert len(resumed) == n
            row = {
                "decisions": n,
                "file_bytes": len(data),
                "set_verdict_ms": _median_ms(saves),
                "set_verdict_max_ms": round(max(saves) * 1e3, 3),
                "floor_write_fsync_rename_ms": _median_ms(floor),
                "ratio_to_floor": round(statistics.median(saves) / statistics.median(floor), 2),
                "open_ms": round(open_s * 1e3, 1),
            }
            rows.append(row)
            print(
                f"{n:>6} decisions ({len(data) / 1024:.0f} KiB): set_verdict "
                f"{row['set_verdict_ms']} ms (max {row['set_verdict_max_ms']}), "
                f"write+fsync+rename alone {row['floor_write_fsync_rename_ms']} ms "
                f"(x{row['ratio_to_floor']}); open {row['open_ms']} ms"
            )
        big = _table(100_000)
        t0 = time.perf_counter()
        table_identity(big)
        ident = time.perf_counter() - t0
        print(f"table_identity of 100,000 sites: {ident * 1e3:.0f} ms")
    out["saves"] = rows
    out["identity_100k_ms"] = round(ident * 1e3, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _decision(review, i: int, verdict: str, note: str):
    from imagery_gui.model.review import Decision

    return Decision(
        site_id=review._texts[i],
        pre_sv=int(review.table.pre_sv[i]),
        post_sv=int(review.table.post_sv[i]),
        verdict=verdict,
        note=note,
        tags=(),
        time="2025-01-01T00:00:00.000Z",
    )


if __name__ == "__main__":
    raise SystemExit(main())
