"""The model layer (and the package root) never import Qt."""

from __future__ import annotations

import subprocess
import sys

QT_MODULES = ("PySide6", "pyqtgraph", "superqt", "qtpy", "PyQt5", "PyQt6")


def test_model_imports_no_qt():
    code = f"""
import importlib, pkgutil, sys
import imagery_gui, imagery_gui.model as m
names = [i.name for i in pkgutil.walk_packages(m.__path__, m.__name__ + ".")]
assert len(names) >= 10, names
for name in names:
    importlib.import_module(name)
import imagery_gui.cli  # the CLI module is imported by the entry point before any GUI
leaked = sorted({{k.split('.')[0] for k in sys.modules}} & set({QT_MODULES!r}))
print("LEAKED", leaked)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LEAKED []" in out.stdout, out.stdout
