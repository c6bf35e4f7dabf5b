"""The installed PySide6 must not leak references to None.

PySide6 6.12.0 returns None from every void Qt method without taking a reference. On
Python 3.11, where None's reference count is real, the viewer then aborts with "Fatal
Python error: none_dealloc" a few minutes into a session (found by
benchmarks/bench_longrun.py); pyproject.toml excludes that version. This test fails if
a PySide6 with the bug is installed on such a Python.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QTimer


def test_void_qt_calls_keep_nones_reference_count(qapp):
    timer = QTimer()
    before = sys.getrefcount(None)
    for _ in range(200):
        QCoreApplication.processEvents()
        timer.start(1000)
        timer.stop()
    lost = before - sys.getrefcount(None)
    # Other threads may hold or drop a few references meanwhile; the bug loses 600.
    assert lost < 100, f"{lost} references to None lost in 600 void Qt calls"
