"""The system libraries Qt's X11 (xcb) window needs, and a check that they load.

The PySide6 wheel brings Qt itself but not the X11/OpenGL/font libraries its xcb platform
plugin links against. When one is missing, Qt prints "could not load the Qt platform
plugin xcb" (often blaming the wrong library) and aborts the process with a core dump.
:func:`missing_libraries` asks the dynamic loader (``ldd``) first, so ``imagery-gui`` can
name what is missing and print the one apt line that installs it. No Qt is imported here.

``XCB_PACKAGES`` is the table soname -> Debian/Ubuntu package; ``apt_line()`` is made from
it, the README shows the same line, and ``tests/test_syslibs.py`` checks both against
``ldd`` of the installed plugin.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

# What Qt's xcb platform plugin (libqxcb.so -> libQt6XcbQpa, libQt6Gui, libQt6DBus) and its
# GL integrations load, and the package that has each (Debian 12 / Ubuntu 22.04+ names).
XCB_PACKAGES: dict[str, str] = {
    # X11 and the xcb utility libraries (libxcb-icccm4 and libxcb-keysyms1 are the ones
    # most often missing: nothing else on a typical desktop needs them)
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libbsd.so.0": "libbsd0",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    # OpenGL (libQt6Gui links it even when no GL is used)
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libEGL.so.1": "libegl1",
    # fonts, D-Bus, GLib (Qt's event loop)
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libpng16.so.16": "libpng16-16",
    "libbrotlidec.so.1": "libbrotli1",
    "libbrotlicommon.so.1": "libbrotli1",
    "libexpat.so.1": "libexpat1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libpcre2-8.so.0": "libpcre2-8-0",
}

# Libraries every Debian/Ubuntu system has (the C/C++ runtime, and what apt and dpkg
# themselves need), so the apt line does not list them.
BASE_PACKAGES: dict[str, str] = {
    "libc.so.6": "libc6",
    "libm.so.6": "libc6",
    "libdl.so.2": "libc6",
    "libpthread.so.0": "libc6",
    "librt.so.1": "libc6",
    "ld-linux-x86-64.so.2": "libc6",
    "ld-linux-aarch64.so.1": "libc6",
    "linux-vdso.so.1": "(kernel)",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libz.so.1": "zlib1g",
    "libzstd.so.1": "libzstd1",
    "liblzma.so.5": "liblzma5",
    "liblz4.so.1": "liblz4-1",
    "libmd.so.0": "libmd0",
    "libsystemd.so.0": "libsystemd0",
    "libcap.so.2": "libcap2",
    "libgcrypt.so.20": "libgcrypt20",
    "libgpg-error.so.0": "libgpg-error0",
}


def apt_packages() -> list[str]:
    """The packages of the apt line, sorted, each once."""
    return sorted(set(XCB_PACKAGES.values()))


def apt_line() -> str:
    """The one command that installs what Qt's window needs on Debian/Ubuntu."""
    return "sudo apt-get install -y " + " ".join(apt_packages())


def pyside_dir() -> Path | None:
    """The installed PySide6 package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def xcb_plugin(env: dict[str, str] | None = None) -> Path | None:
    """The libqxcb.so Qt would load: from $QT_QPA_PLATFORM_PLUGIN_PATH, else PySide6's."""
    env = dict(os.environ) if env is None else env
    override = env.get("QT_QPA_PLATFORM_PLUGIN_PATH")
    if override and (Path(override) / "libqxcb.so").is_file():
        return Path(override) / "libqxcb.so"
    base = pyside_dir()
    if base is None:
        return None
    path = base / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def ldd(path: Path) -> dict[str, str | None]:
    """soname -> resolved path (None when "not found") for everything ``path`` loads.

    ``ldd`` lists the whole closure, so libraries needed through libQt6XcbQpa are included.
    Raises OSError when ``ldd`` is not available or fails.
    """
    exe = shutil.which("ldd")
    if exe is None:
        raise OSError("ldd is not available")
    out = subprocess.run(
        [exe, str(path)], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    libs: dict[str, str | None] = {}
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            target = rest.strip()
            libs[name.strip()] = None if target.startswith("not found") else target.split(" (")[0]
        elif line and not line.startswith("statically"):
            # "/lib64/ld-linux-x86-64.so.2 (0x...)" or "linux-vdso.so.1 (0x...)"
            libs[os.path.basename(line.split(" (")[0])] = line.split(" (")[0]
    if not libs:
        raise OSError(f"ldd could not read {path}")
    return libs


def missing_libraries(plugin: Path | None = None) -> list[str] | None:
    """Sonames the xcb plugin needs that the loader cannot find ([] when all load).

    None when the question cannot be answered here (no PySide6 plugin, no ``ldd``): then
    Qt gets to try, as before.
    """
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return None
    try:
        libs = ldd(plugin)
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted(name for name, where in libs.items() if where is None)


def missing_message(missing: list[str]) -> str:
    """What ``imagery-gui`` prints (two lines) when libraries of the xcb plugin are missing."""
    system = [m for m in missing if m in XCB_PACKAGES or m in BASE_PACKAGES]
    others = [m for m in missing if m not in system]
    problems = []
    if system:
        named = ", ".join(f"{m} ({(XCB_PACKAGES | BASE_PACKAGES)[m]})" for m in system)
        problems.append(
            f"its X11 (xcb) plugin needs system libraries that are not installed: {named}"
        )
    if others:
        problems.append(
            f"Qt's own libraries are missing beside the plugin: {', '.join(others)} (reinstall "
            "PySide6: pip install --force-reinstall pyside6-essentials)"
        )
    return (
        f"imagery-gui: Qt cannot open a window: {'; '.join(problems)}. On Debian/Ubuntu, the "
        "line below installs the system libraries Qt needs; without a window, "
        "`imagery-gui --screenshot out.png` and `imagery-gui export` work as they are.\n"
        + apt_line()
    )
