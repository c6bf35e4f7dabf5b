"""The gallery's tile worker and a restyle that lands while it takes work from its queue."""

from __future__ import annotations

import collections

from imagery_gui.qt.gallery import TileJob, TileWorker


def test_tiles_asked_for_by_a_job_set_while_the_worker_reads_its_queue_are_made():
    """The GUI thread replaces the job (a restyle) and asks for the new job's tiles right
    after the worker has read which job is current: those tiles are made for the new job,
    not dropped as stale (nothing asks for them again until the view scrolls; a run of the
    whole suite once waited 60 s for such tiles)."""
    worker = TileWorker(0)  # no processes: tiles are made in the worker's thread
    old, new = TileJob(1, None, {}, None, None, 0), TileJob(2, None, {}, None, None, 0)
    made: list[tuple[int, int, int | None]] = []
    worker._render_here = lambda job, row, dz: made.append((job.epoch, row, dz))  # type: ignore[method-assign]

    class Restyled(collections.deque):
        """The queue the worker takes from; the restyle lands at its first take."""

        landed = False

        def popleft(self):
            if not self.landed:
                self.landed = True
                worker.job = new  # set_job, then want(): this queue holds the new tiles
            return super().popleft()

    worker.job = old
    worker.queue = Restyled([(2, row, 0) for row in range(6)])
    worker.process(None)
    assert made == [(2, row, 0) for row in range(6)]


def test_tiles_of_an_older_job_are_still_dropped():
    worker = TileWorker(0)
    made: list[tuple[int, int, int | None]] = []
    worker._render_here = lambda job, row, dz: made.append((job.epoch, row, dz))  # type: ignore[method-assign]
    worker.job = TileJob(3, None, {}, None, None, 0)
    worker.queue = collections.deque([(2, 0, 0), (3, 1, 0), (2, 2, 0), (3, 4, 0)])
    worker.process(None)
    assert made == [(3, 1, 0), (3, 4, 0)]
