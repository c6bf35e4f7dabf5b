"""First main window: the composite of one slice of a dataset (replaced by the full viewer)."""

from __future__ import annotations

import argparse

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QApplication, QMainWindow

from ..model import render
from ..model.dataset import Dataset
from ..model.geometry import bounds_from_center
from ..model.palette import color_table, colors_for_ids
from ..model.segments import unique_ids


class MainWindow(QMainWindow):
    def __init__(self, dataset: Dataset, center, resolution=None) -> None:
        super().__init__()
        self.setWindowTitle("imagery-gui")
        self.resize(1000, 900)
        self.dataset = dataset
        view = pg.GraphicsLayoutWidget()
        self.viewbox = view.addViewBox(lockAspect=True, invertY=True)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.image_item)
        self.setCentralWidget(view)
        box = bounds_from_center(np.asarray(center, dtype=np.int64), 1024, 1024, 1)
        img, seg = dataset.aligned_cutout(box, resolution=resolution)
        ids = unique_ids(seg)
        table = color_table(colors_for_ids(ids.tolist()).values())
        cov = render.coverage_from_index(
            render.label_index(seg[0], ids), len(ids), render.Geometry()
        )
        rgba = np.asarray(render.composite(img[0], render.blend(cov, table, 0.3)))
        self.image_item.setImage(rgba, levels=None)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MainWindow:
        if args.image_source or args.segmentation_source:
            ds = Dataset(args.image_source, args.segmentation_source, resolution=args.resolution)
            center = args.center or ds.volume_bounds().mean(axis=0)
        else:
            from ..model.demo import ensure_demo

            demo = ensure_demo(log=print)
            ds = Dataset(demo.image_source, demo.segmentation_source)
            center = args.center or demo.center
        return cls(ds, center, args.resolution)

    def screenshot_and_quit(self, path: str) -> int:
        self.show()
        QApplication.processEvents()
        self.grab().save(path)
        return 0
