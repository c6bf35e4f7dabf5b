"""Time a command as a whole process: wall, CPU and peak resident memory.

The command is started by a small launcher process, which waits for it with ``wait4``:
on Linux a child's ``ru_maxrss`` starts from the memory of the process that forked it,
so forking from a benchmark that holds gigabytes would report those gigabytes.
"""

from __future__ import annotations

import json
import subprocess
import sys

LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_mib": ru.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status)}))
"""


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` once (output discarded); raise if it fails."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *cmd],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res.pop("code") != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return res
