"""Menus and shortcuts, declared as data.

:data:`MENUS` lists every menu entry: the menu, its text, the window method it calls, its
shortcut and whether it is a checkable setting. :func:`build_menus` makes the ``QAction``
objects from it; :data:`VIEW_KEYS` are the keys the slice view handles itself. A shortcut
list (Help) is made from the same two tables, so it can never drift from what the keys do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One menu entry; ``slot`` names a window method, or a method of one of its helpers
    (``"figures.export_png"``); ``"-"`` as text is a separator."""

    menu: str
    text: str
    slot: str = ""
    shortcut: str | QKeySequence.StandardKey | None = None
    name: str = ""  # the window attribute holding the QAction (``act_<name>``)
    checkable: bool = False


SEP = "-"

MENUS: tuple[ActionSpec, ...] = (
    ActionSpec("&File", "&Open...", "open_dialog", QKeySequence.StandardKey.Open, "open"),
    ActionSpec("&File", "Open &demo volume", "open_demo", None, "open_demo"),
    ActionSpec("&File", "Recent sources", "", None, "recent"),  # a submenu
    ActionSpec("&File", "Open &site table...", "sites.open_dialog", "Ctrl+Shift+O", "open_sites"),
    ActionSpec("&File", SEP),
    ActionSpec("&File", "&Export PNG...", "figures.export_png", "Ctrl+E", "export"),
    ActionSpec(
        "&File", "Export &z-series...", "figures.export_series", "Ctrl+Shift+E", "export_series"
    ),
    ActionSpec(
        "&File", "&Copy image to clipboard", "figures.copy_image", "Ctrl+Shift+C", "copy_image"
    ),
    ActionSpec("&File", SEP),
    ActionSpec("&File", "&Quit", "close", QKeySequence.StandardKey.Quit, "quit"),
    ActionSpec(
        "&Edit", "Copy &Neuroglancer link", "figures.copy_neuroglancer_link", "Ctrl+L", "link"
    ),
    ActionSpec(
        "&View", "Zoom to full resolution (1 voxel = 1 pixel)", "zoom_one_to_one", "Ctrl+1", "zoom"
    ),
    ActionSpec("&View", "&Next site", "sites.next_site", "]", "next_site"),
    ActionSpec("&View", "&Previous site", "sites.previous_site", "[", "previous_site"),
    ActionSpec(
        "&Settings", "Memory cache size...", "settings_menu.ask_cache_size", None, "cache_size"
    ),
    ActionSpec("&Settings", "Fetch timeout...", "settings_menu.ask_timeout", None, "timeout"),
    ActionSpec("&Settings", SEP),
    ActionSpec(
        "&Settings",
        "Disk cache for remote data",
        "settings_menu.set_disk_cache",
        None,
        "disk_cache",
        True,
    ),
    ActionSpec(
        "&Settings", "Clear disk cache", "settings_menu.clear_disk_cache", None, "clear_cache"
    ),
    ActionSpec("&Help", "About imagery-gui", "about", None, "about"),
)

#: Keys the slice view handles (key, shift held) -> z step. Shift steps 10 slices.
VIEW_KEYS: dict[int, int] = {
    Qt.Key.Key_Up: 1,
    Qt.Key.Key_Right: 1,
    Qt.Key.Key_PageUp: 1,
    Qt.Key.Key_Down: -1,
    Qt.Key.Key_Left: -1,
    Qt.Key.Key_PageDown: -1,
}
BIG_STEP = 10


def build_menus(window: QMainWindow, specs: tuple[ActionSpec, ...] = MENUS) -> dict[str, QAction]:
    """Menus and actions from ``specs``, connected to the window's methods; returns the
    actions by name (also set as ``window.act_<name>``). Entries without a slot become
    submenus, available as ``window.menu_<name>``."""
    menus: dict[str, QMenu] = {}
    actions: dict[str, QAction] = {}
    for spec in specs:
        menu = menus.get(spec.menu)
        if menu is None:
            menu = menus[spec.menu] = window.menuBar().addMenu(spec.menu)
            setattr(window, "menu_" + spec.menu.strip("&").lower(), menu)
        if spec.text == SEP:
            menu.addSeparator()
            continue
        if not spec.slot:
            setattr(window, "menu_" + spec.name, menu.addMenu(spec.text))
            continue
        act = QAction(spec.text, window)
        if spec.shortcut is not None:
            act.setShortcut(QKeySequence(spec.shortcut))
        slot: Any = window
        for part in spec.slot.split("."):  # "figures.export_png": a helper's method
            slot = getattr(slot, part)
        if spec.checkable:
            act.setCheckable(True)
            act.toggled.connect(slot)
        else:
            act.triggered.connect(lambda _checked=False, fn=slot: fn())
        menu.addAction(act)
        window.addAction(act)  # its shortcut works wherever the focus is in the window
        actions[spec.name] = act
        setattr(window, "act_" + spec.name, act)
    return actions
