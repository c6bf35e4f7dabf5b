"""The built-in demo volume."""

from __future__ import annotations

import numpy as np

from imagery_gui.model import demo as demo_mod
from imagery_gui.model.dataset import Dataset
from imagery_gui.model.source import Layer


def test_layout_and_ids(demo):
    img = Layer(demo.image_source, "image")
    seg = Layer(demo.segmentation_source, "segmentation")
    assert img.scales[0].resolution == (4, 4, 40) and img.scales[0].encoding == "jpeg"
    assert img.num_mips >= 2
    assert seg.scales[0].resolution == (8, 8, 40)
    assert seg.scales[0].encoding == "compressed_segmentation"
    ds = Dataset(demo.image_source, demo.segmentation_source)
    c = np.asarray(demo.center)
    box = [(c - [512, 512, 0]).tolist(), (c + [512, 512, 1]).tolist()]
    labels = ds.read_segmentation(box)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    assert len(ids) >= 200  # hundreds of cells in one 4 um field
    assert ids.min() > 2**53 and all(len(str(int(i))) == 18 for i in ids)
    assert (labels == 0).mean() > 0.005  # some unsegmented space (vessel, myelin)


def test_looks_like_em(demo):
    """Membranes are dark on the label boundaries; the image is not flat."""
    ds = Dataset(demo.image_source, demo.segmentation_source)
    c = np.asarray(demo.center)
    box = [(c - [256, 256, 0]).tolist(), (c + [256, 256, 1]).tolist()]
    img, seg = ds.aligned_cutout(box)
    img = img[0].astype(float)
    seg = seg[0]
    boundary = np.zeros(seg.shape, bool)
    boundary[1:] |= seg[1:] != seg[:-1]
    boundary[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    assert img[boundary].mean() < img[~boundary].mean() - 40
    assert 20 < img.std() < 80


def test_deterministic_and_reused(demo):
    """The stored labels are exactly what the seeded generator produces, and it is reused."""
    scene = demo_mod._scene()
    layer = Layer(demo.segmentation_source, "segmentation")
    lo, hi = layer.bounds(0)
    z = 5
    stored = layer.read([lo[0], lo[1], lo[2] + z], [hi[0], hi[1], lo[2] + z + 1], 0)[0]
    labels, _ = demo_mod.segment_slice(scene, z)
    np.testing.assert_array_equal(stored, labels)
    mtime = (demo.root / "image" / "info").stat().st_mtime_ns
    again = demo_mod.ensure_demo()
    assert again.root == demo.root
    assert (demo.root / "image" / "info").stat().st_mtime_ns == mtime  # not regenerated
