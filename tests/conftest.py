"""Shared fixtures: real Precomputed volumes on disk, built once per test session.

Nothing here mocks cloud-volume: every volume is written with cloud-volume itself and read
back through it, from ``file://`` paths or a loopback HTTP server.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# Qt must never try to open a display in tests, and nothing may touch the user's settings
# or cache. These are set before anything imports Qt or the package.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="imagery-gui-tests-"))
os.environ["IMAGERY_GUI_CACHE_DIR"] = str(_SESSION_DIR / "cache")
os.environ["IMAGERY_GUI_SETTINGS_DIR"] = str(_SESSION_DIR / "settings")
os.environ.setdefault("CLOUD_VOLUME_DIR", str(_SESSION_DIR / "cloudvolume"))
# caveclient and cloud-volume read and write token files and caches under ~: keep the
# user's home out of the tests.
os.environ["HOME"] = str(_SESSION_DIR / "home")
(_SESSION_DIR / "home").mkdir(parents=True, exist_ok=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers.volumes import (  # noqa: E402
    BIG_OFFSET,
    VolumePair,
    build_medulla_pair,
    build_pinky_pair,
    build_synthetic_pair,
    em_data_dir,
    real_em_dir,
)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def demo(session_dir):
    """The built-in demo volume, generated once into the session's cache folder."""
    from imagery_gui.model.demo import ensure_demo

    return ensure_demo()


@pytest.fixture(scope="session")
def demo_pair(demo) -> VolumePair:
    return VolumePair(
        image=demo.image_source, segmentation=demo.segmentation_source, center=demo.center
    )


@pytest.fixture(scope="session")
def synthetic_small(session_dir) -> VolumePair:
    """Image 4x4x40 (raw) + segmentation 8x8x40 with small ids (< 2**53), 3 mips each."""
    return build_synthetic_pair(session_dir / "synthetic_small", id_offset=0)


@pytest.fixture(scope="session")
def synthetic_big(session_dir) -> VolumePair:
    """The same volumes with every non-zero id raised by 864691135000000000 (above 2**53)."""
    return build_synthetic_pair(session_dir / "synthetic_big", id_offset=BIG_OFFSET)


@pytest.fixture(scope="session")
def em_data() -> Path:
    """The committed crops of the real volumes (tests/data/em): present on every clone."""
    return real_em_dir()


@pytest.fixture(scope="session")
def em_data_full() -> Path:
    """The full real volumes; only requested by cases that exist when they are present."""
    path = em_data_dir()
    assert path is not None, "cases using the full EM data are only collected when it exists"
    return path


@pytest.fixture(scope="session")
def pinky_pair(session_dir, em_data) -> VolumePair:
    """Real MICrONS pinky40 segmentation (8x8x40) cropped, with EM-like imagery at 4x4x40."""
    return build_pinky_pair(session_dir / "pinky", em_data, id_offset=None)


@pytest.fixture(scope="session")
def pinky_pair_small(session_dir, em_data) -> VolumePair:
    """The pinky40 crop with ids lowered below 2**53 (so ImageryClient's float math is exact)."""
    return build_pinky_pair(session_dir / "pinky_small", em_data, id_offset=-BIG_OFFSET)


@pytest.fixture(scope="session")
def medulla(em_data) -> VolumePair:
    """Real FlyEM medulla FIB-SEM image and segmentation (10 nm isotropic; z 64..128 kept)."""
    base = em_data / "precomputed" / "medulla_fib"
    return VolumePair(
        image=f"precomputed://file://{base / 'image'}",
        segmentation=f"precomputed://file://{base / 'segmentation'}",
        center=(125, 125, 96),
    )


@pytest.fixture(scope="session")
def medulla_full(em_data_full) -> VolumePair:
    """The whole 250^3 medulla cube from ../shared/em_data (an extra case when present)."""
    base = em_data_full / "precomputed" / "medulla_fib"
    return VolumePair(
        image=f"precomputed://file://{base / 'image'}",
        segmentation=f"precomputed://file://{base / 'segmentation'}",
        center=(125, 125, 125),
    )


@pytest.fixture(scope="session")
def medulla_small(session_dir, em_data) -> VolumePair:
    """A crop of the real medulla data with ids lowered below 2**53."""
    return build_medulla_pair(session_dir / "medulla_small", em_data, id_offset=-BIG_OFFSET)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


CAVE_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="session")
def graphene_table(session_dir, synthetic_big):
    """A graphene table whose supervoxels split the synthetic volume's root segments."""
    from cloudvolume import CloudVolume

    from tests.helpers.cave_server import build_graphene_table

    roots = np.asarray(
        CloudVolume(f"file://{synthetic_big.segmentation_path}", progress=False)[:, :, :]
    )[..., 0]
    return build_graphene_table(session_dir / "graphene", roots, offset=(1000, 2000, 100))


@pytest.fixture
def cave(synthetic_big, graphene_table):
    """A local CAVE server (info, auth, chunkedgraph, materialize, state) on 127.0.0.1."""
    from tests.helpers.cave_server import FakeCave

    with FakeCave(synthetic_big.image_path.parent, graphene_table, tokens={CAVE_TOKEN}) as server:
        yield server


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token.json"
    path.write_text(json.dumps({"token": CAVE_TOKEN}))
    return path


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Each test gets its own ~ (token files, caveclient caches never leak between tests)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home


_TRACE = os.environ.get("IMAGERY_GUI_TEST_TRACE")


def pytest_runtest_logstart(nodeid, location):
    """With IMAGERY_GUI_TEST_TRACE set (CI does), the test running now is written there,
    so a run that dies (an abort, a kill) can say which test it died in."""
    if _TRACE:
        with open(_TRACE, "w") as fh:
            fh.write(nodeid + "\n")


def pytest_sessionstart(session):
    """A crash (a segfault, an abort) prints the stack of the thread it happened in only:
    faulthandler prints at most 100 threads, and the many idle ones of a whole run
    (download pools, loopback servers' connection threads) hid the crashing one."""
    import faulthandler

    from _pytest.faulthandler import fault_handler_stderr_fd_key

    fd = session.config.stash.get(fault_handler_stderr_fd_key, None)
    if fd is not None and faulthandler.is_enabled():
        faulthandler.enable(file=fd, all_threads=False)


def pytest_unconfigure(config):
    """The session's folder (the demo volume, caches, settings: about 50 MB after the whole
    suite) goes with the run: every run used to leave one in the temporary folder."""
    import shutil

    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
