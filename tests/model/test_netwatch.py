"""What netwatch measures of real chunk reads over the loopback server (where the time of a
read goes, the bytes a second while bodies arrive) and its hedged requests for stragglers.
Reads go through cloud-volume with the viewer's HTTP policy installed in this process."""

from __future__ import annotations

import time

import numpy as np
import pytest

from imagery_gui.model import netwatch
from imagery_gui.model.dataset import Dataset
from tests.helpers.http_server import LoopbackServer

BOX = [[2000, 4000, 100], [2384, 4320, 112]]  # the whole image: 6 x 5 x 2 chunks of 64x64x8


@pytest.fixture(autouse=True)
def viewer_policy():
    netwatch.install(viewer_retries=True)
    netwatch._transfers.clear()


def _read(server) -> np.ndarray:
    return Dataset(server.source("image"), None).read_image(BOX)


def test_reads_waiting_on_round_trips_spend_their_time_waiting(synthetic_big):
    with LoopbackServer(synthetic_big.image_path.parent, latency=0.05, seed=1) as srv:
        got = _read(srv)
    np.testing.assert_array_equal(got, Dataset(synthetic_big.image).read_image(BOX))
    share = netwatch.body_share()
    assert share is not None and share < 0.5, share


def test_reads_over_a_narrow_link_spend_their_time_receiving(synthetic_big):
    """1 MB/s shared by all answers: the bodies take the time, and the bytes a second
    while they arrive are about the link's."""
    root = synthetic_big.image_path.parent
    t0 = time.monotonic()
    with LoopbackServer(root, latency=0.005, bandwidth=1e6, seed=1) as srv:
        got = _read(srv)
        host = srv.url.split("://", 1)[1].split("/", 1)[0]
    t1 = time.monotonic()
    np.testing.assert_array_equal(got, Dataset(synthetic_big.image).read_image(BOX))
    share = netwatch.body_share()
    assert share is not None and share > 0.5, share
    rate, nbytes = netwatch.body_rate()
    assert nbytes > 0
    assert 0.3e6 < rate < 3e6, rate
    # the wire bytes of the reads that ended within a span of time, of one host
    assert netwatch.wire_bytes(t0, t1) == nbytes
    assert netwatch.wire_bytes(t0, t1, hosts=frozenset([host])) == nbytes
    assert netwatch.wire_bytes(t0, t1, hosts=frozenset(["elsewhere:1"])) == 0
    assert netwatch.wire_bytes(t1, time.monotonic()) == 0


def test_each_server_is_measured_on_its_own(synthetic_big):
    """A narrow link to one server says nothing of another's: the measures are kept per
    host, and a dataset's link meter asks for its own servers' only."""
    from imagery_gui.model.linkmeter import LinkMeter

    root = synthetic_big.image_path.parent
    with LoopbackServer(root, latency=0.005, bandwidth=1e6, seed=1) as narrow:
        _read(narrow)
        narrow_host = netwatch.host_of(narrow.source("image"))
    with LoopbackServer(root, latency=0.05, seed=1) as wide:
        _read(wide)
        wide_host = netwatch.host_of(wide.source("image"))
    assert narrow_host != wide_host and narrow_host.startswith("127.0.0.1:")
    assert netwatch.body_share(hosts=frozenset([narrow_host])) > 0.5
    assert netwatch.body_share(hosts=frozenset([wide_host])) < 0.5
    meter = LinkMeter()  # a dataset's, on the wide link: it hears of that one only
    meter.set_hosts(frozenset([wide_host]))
    meter.ended(meter.started(), 1000)
    assert meter.snapshot().body_share == netwatch.body_share(hosts=frozenset([wide_host]))
    assert not meter.snapshot().bandwidth_bound
    assert netwatch.host_of("precomputed://gs://bucket/image") == ""
    assert netwatch.host_of("graphene://https://example.org/segmentation/table/x") == ""


def test_no_hedging_when_the_bandwidth_is_the_limit(synthetic_big):
    root = synthetic_big.image_path.parent
    with LoopbackServer(root, latency=0.005, bandwidth=1e6, seed=1) as srv:
        _read(srv)
    assert netwatch.hedge_delay() is None


def test_a_straggling_chunk_is_asked_for_again_and_the_first_answer_used(synthetic_big):
    root = synthetic_big.image_path.parent
    # 50 ms: the answers' waits, not their bodies, take the time (at 20 ms the bodies'
    # share, decoded by 64 threads on 2 CPUs, came to about half: no hedging then)
    with LoopbackServer(root, latency=0.05, seed=4) as srv:
        _read(srv)  # what a normal read takes: the hedge delay is learnt from these
        _read(srv)
        assert netwatch.hedge_delay() is not None
        before = netwatch.totals()
        srv.straggle_rate, srv.straggle = 0.15, 2.0  # some answers come 2 s late
        got = _read(srv)
        log = list(srv.log)
        straggled = srv.counts["straggled"]
    np.testing.assert_array_equal(got, Dataset(synthetic_big.image).read_image(BOX))
    after = netwatch.totals()
    assert straggled > 0
    assert after["hedges"] > before["hedges"]
    assert after["hedges_won"] > before["hedges_won"]  # a second copy answered first
    # the hedged chunks were asked for twice in the straggling read
    tail = log[-(60 + after["hedges"] - before["hedges"]) :]
    assert len(tail) > len(set(tail))
