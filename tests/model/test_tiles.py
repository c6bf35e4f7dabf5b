"""Gallery tiles made from a task (a sub-table of the sites near the tile, as sent to a
worker process) equal the figure of the whole table, section by section."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from imagery_gui.model.batch import SiteFigure, site_spec
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.export import FigureSpec, make_figure
from imagery_gui.model.sites import read_sites
from imagery_gui.model.state import z_bounds
from imagery_gui.model.style import OverlayStyle, Selection
from imagery_gui.model.tiles import render_tile, tile_task


@pytest.fixture(scope="module")
def setup(demo):
    ds = Dataset(demo.image_source, demo.segmentation_source).open()
    table = read_sites(str(demo.synapses), resolution=(4, 4, 40))
    res = tuple(float(v) for v in ds.resolution)
    style = OverlayStyle(outline=True, width=2)
    spec = FigureSpec(
        bounds=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
        resolution=res,
        selection=Selection(),
        style=style,
        annotate=True,
    )
    return ds, table, SiteFigure(size=(128, 128, 1), resolution=res, spec=spec, partner_style=style)


@pytest.mark.parametrize("row", [0, 17, 150, 299])
def test_a_tile_and_its_stack_equal_the_whole_tables_figures(setup, row):
    ds, table, fig = setup
    args = ds.replica_args()
    k = 2
    task = tile_task(args, fig, table, row, range(-k, k + 1))
    assert len(task.table) < len(table)  # only the neighbours travel
    got = dict(render_tile(task))
    spec = site_spec(fig, table, row)
    lo, hi = spec.bounds
    zlo, zhi = z_bounds(ds)
    inside = [dz for dz in range(-k, k + 1) if zlo <= int(lo[2]) + dz <= zhi]
    assert sorted(got) == inside  # a stack at the volume's first or last section is shorter
    for dz in inside:
        shifted = replace(spec, bounds=((lo[0], lo[1], lo[2] + dz), (hi[0], hi[1], hi[2] + dz)))
        want = np.asarray(make_figure(ds, shifted).slices[0].convert("RGBA"))
        assert np.array_equal(got[dz], want), (row, dz)
    drawn = [int(table.ids[r]) for r in make_figure(ds, spec).site_rows]
    assert drawn, "the case must draw glyphs of neighbours to mean anything"


def test_offsets_must_be_consecutive(setup):
    ds, table, fig = setup
    with pytest.raises(ValueError, match="consecutive"):
        render_tile(tile_task(ds.replica_args(), fig, table, 0, (0, 2)))


def test_several_tiles_at_once_equal_one_by_one_and_an_error_stays_with_its_tile(setup):
    from imagery_gui.model.tiles import render_tiles

    ds, table, fig = setup
    args = ds.replica_args()
    tasks = [tile_task(args, fig, table, row) for row in (3, 40, 41, 200)]
    bad = replace(tasks[1], dataset={**args, "image_source": "precomputed://file:///no/such"})
    results = render_tiles([tasks[0], bad, *tasks[2:]])
    assert [ok for ok, _ in results] == [True, False, True, True]
    assert isinstance(results[1][1], str) and results[1][1]
    for task, (_ok, got) in zip([tasks[0], *tasks[2:]], [results[0], *results[2:]]):
        want = render_tile(task)
        assert [o for o, _ in got] == [o for o, _ in want] == [0]
        assert np.array_equal(got[0][1], want[0][1])


def test_a_tile_process_runs_at_the_tile_nice_value_not_lower():
    """The pool's initializer in a real spawned process: nice 10 (TILE_NICE) whatever the
    starting thread's, never 10 more than it (a worker thread already at 10 gave 19)."""
    import multiprocessing
    import os
    import threading
    from concurrent.futures import ProcessPoolExecutor

    from imagery_gui.model.tiles import TILE_NICE
    from imagery_gui.model.workerinit import init_tile_process

    base = os.getpriority(os.PRIO_PROCESS, 0)
    got = {}

    def start_from_a_lowered_thread():  # as the gallery's worker thread does (Linux: per thread)
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(base, TILE_NICE))
        with ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_tile_process,
            initargs=(TILE_NICE,),
        ) as pool:
            got["nice"] = pool.submit(os.getpriority, os.PRIO_PROCESS, 0).result(timeout=120)

    t = threading.Thread(target=start_from_a_lowered_thread)
    t.start()
    t.join(180)
    assert got["nice"] == max(TILE_NICE, base)
