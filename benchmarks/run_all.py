"""Run every benchmark and write its figures to benchmarks/results/*.json.

python benchmarks/run_all.py            (or: make bench)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("bench_render.py", ["--json", str(HERE / "results" / "render.json")]),
    ("bench_viewer.py", ["--json", str(HERE / "results" / "viewer.json")]),
    ("bench_remote.py", ["--json", str(HERE / "results" / "remote.json")]),
    ("bench_chunkpool.py", ["--json", str(HERE / "results" / "chunkpool.json")]),
    ("bench_longrun.py", ["--json", str(HERE / "results" / "longrun.json")]),
]


def main() -> int:
    failed = 0
    for script, args in BENCHES:
        print(f"\n=== {script} ===", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / script), *args]) != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
