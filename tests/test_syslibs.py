"""Qt's system libraries: the table matches what the installed xcb plugin loads (``ldd``),
the README's apt line is the table's, and a plugin that cannot load is reported, not fatal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from imagery_gui import syslibs
from imagery_gui.cli import display_problem

ROOT = Path(__file__).resolve().parents[1]


def _plugins() -> list[Path]:
    base = syslibs.pyside_dir()
    assert base is not None, "PySide6 is a dependency: it must be installed"
    plugin = base / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    assert plugin.is_file()
    # The GL integrations are loaded by the xcb plugin when a window uses OpenGL.
    return [plugin, *sorted((base / "Qt" / "plugins" / "xcbglintegrations").glob("*.so"))]


def _bundled(name: str, where: str | None, base: Path) -> bool:
    """Qt's own libraries (and its ICU), shipped inside the PySide6 wheel."""
    if where is not None:
        return Path(where).resolve().is_relative_to(base.resolve())
    return name.startswith(("libQt6", "libicu", "libpyside6", "libshiboken6"))


def test_every_library_the_xcb_plugin_needs_has_a_package():
    base = syslibs.pyside_dir()
    assert base is not None
    needed: dict[str, str | None] = {}
    for plugin in _plugins():
        needed.update(syslibs.ldd(plugin))  # the whole closure, through libQt6XcbQpa
    system = {n: w for n, w in needed.items() if not _bundled(n, w, base)}
    assert "libxcb.so.1" in system and "libxcb-icccm.so.4" in system  # ldd really ran
    known = syslibs.XCB_PACKAGES | syslibs.BASE_PACKAGES
    unknown = sorted(set(system) - set(known))
    assert unknown == [], f"add these sonames to syslibs.XCB_PACKAGES: {unknown}"
    # The table holds nothing the plugin does not need (so the apt line stays minimal).
    unused = sorted(set(syslibs.XCB_PACKAGES) - set(system))
    assert unused == [], f"no longer needed by the xcb plugin: {unused}"


def test_readme_apt_line_is_exactly_the_tables_packages():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in readme.splitlines() if "apt-get install" in ln]
    qt_lines = [ln for ln in lines if "libxcb" in ln]
    assert len(qt_lines) == 1, qt_lines
    assert qt_lines[0] == syslibs.apt_line()
    listed = qt_lines[0].split("install -y", 1)[1].split()
    assert listed == syslibs.apt_packages() == sorted(set(syslibs.XCB_PACKAGES.values()))
    # ...and the Makefile's run target prints the same line, from the same table.
    assert "from imagery_gui.syslibs import apt_line" in (ROOT / "Makefile").read_text()


def test_missing_library_message_names_libraries_and_the_apt_line():
    msg = syslibs.missing_message(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    first, second = msg.splitlines()
    assert "libxcb-icccm.so.4 (libxcb-icccm4)" in first
    assert "libxcb-keysyms.so.1 (libxcb-keysyms1)" in first
    assert second == syslibs.apt_line()


def test_installed_plugin_is_checked_like_qt_would_load_it():
    env = {"DISPLAY": ":99"}
    missing = syslibs.missing_libraries(syslibs.xcb_plugin(env))
    assert missing is not None  # ldd answered on Linux
    problem = display_problem(env, "linux", check_libraries=True)
    if missing:
        assert problem == syslibs.missing_message(missing)
    else:
        assert problem is None
    # A given environment without the flag describes a display, not this machine.
    assert display_problem(env, "linux") is None


def test_a_plugin_that_cannot_load_is_reported_before_qt_aborts(tmp_path):
    """A copy of the xcb plugin away from Qt's libraries (its rpath is $ORIGIN/../../lib)
    cannot load: Qt would abort with a core dump; imagery-gui says why and exits 2."""
    platforms = tmp_path / "platforms"
    platforms.mkdir()
    shutil.copyfile(_plugins()[0], platforms / "libqxcb.so")
    missing = syslibs.missing_libraries(platforms / "libqxcb.so")
    assert missing and "libQt6XcbQpa.so.6" in missing
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=":99", QT_QPA_PLATFORM_PLUGIN_PATH=str(platforms))
    res = subprocess.run(
        [sys.executable, "-m", "imagery_gui"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "libQt6XcbQpa.so.6" in res.stderr and "reinstall PySide6" in res.stderr
    assert res.stderr.strip().splitlines()[-1] == syslibs.apt_line()
    assert not re.search(r"core dumped|Aborted|could not load the Qt platform", res.stderr)
