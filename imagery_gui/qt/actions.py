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
    # ] and [ are view keys (KEYS below): they follow the pointer and leave text fields alone
    ActionSpec("&View", "&Next site  ]", "sites.next_site", None, "next_site"),
    ActionSpec("&View", "&Previous site  [", "sites.previous_site", None, "previous_site"),
    ActionSpec("&View", "Ga&llery of the sites", "gallery.open", "Ctrl+Shift+G", "gallery"),
    ActionSpec("&View", "&Go to...", "nav.go_to_dialog", "Ctrl+G", "go_to"),
    ActionSpec("&View", "&Centre on the volume", "nav.centre_on_volume", "Ctrl+0", "centre"),
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
    ActionSpec("&Help", "&Keyboard shortcuts", "nav.show_shortcuts", "F1", "shortcuts"),
    ActionSpec("&Help", "Online &documentation", "nav.open_docs", None, "docs"),
    ActionSpec("&Help", "About imagery-gui", "about", None, "about"),
)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A key the slice view handles: the window method it calls (``slot``, with ``arg``
    when given; a helper's method as ``"nav.first_slice"``) and what it does (for Help).
    ``edits_text``: a key text fields use for editing, which they keep while they have
    the focus (see :data:`FOCUS_RULE`)."""

    key: Qt.Key
    slot: str
    arg: int | None = None
    does: str = ""
    edits_text: bool = False


BIG_STEP = 10
_NEXT = f"next slice (Shift: {BIG_STEP} slices)"
_PREV = f"previous slice (Shift: {BIG_STEP} slices)"

#: The slice view's navigation keys. Shift with a z step steps BIG_STEP slices.
VIEW_KEY_SPECS: tuple[KeySpec, ...] = (
    KeySpec(Qt.Key.Key_Up, "step_z", 1, _NEXT),
    KeySpec(Qt.Key.Key_Right, "step_z", 1, _NEXT, edits_text=True),
    KeySpec(Qt.Key.Key_PageUp, "step_z", 1, _NEXT),
    KeySpec(Qt.Key.Key_Down, "step_z", -1, _PREV),
    KeySpec(Qt.Key.Key_Left, "step_z", -1, _PREV, edits_text=True),
    KeySpec(Qt.Key.Key_PageDown, "step_z", -1, _PREV),
    KeySpec(Qt.Key.Key_Home, "nav.first_slice", None, "first slice", edits_text=True),
    KeySpec(Qt.Key.Key_End, "nav.last_slice", None, "last slice", edits_text=True),
    KeySpec(Qt.Key.Key_BracketRight, "sites.next_site", None, "next site (Sites dock order)", True),
    KeySpec(
        Qt.Key.Key_BracketLeft,
        "sites.previous_site",
        None,
        "previous site (Sites dock order)",
        True,
    ),
)
#: Keys the slice view handles -> z step (the z-stepping part of VIEW_KEY_SPECS).
VIEW_KEYS: dict[int, int] = {
    s.key: int(s.arg) for s in VIEW_KEY_SPECS if s.slot == "step_z" and s.arg is not None
}
#: Keys handled by one widget or everywhere (not by the slice view), listed in Help.
OTHER_KEYS: tuple[tuple[str, str], ...] = (
    ("Escape", "give the keyboard back to the slice view (from any control)"),
    ("Delete, Backspace", "remove the selected ids (in the Segments list)"),
    ("Return", "add the ids typed (in the Segments entry)"),
)
#: The mouse in the slice view, listed in Help.
MOUSE: tuple[tuple[str, str], ...] = (
    ("Click", "select / deselect the segment under the pointer (or go to a site's glyph)"),
    ("Drag", "pan"),
    ("Wheel", f"step through z (Shift: {BIG_STEP} slices)"),
    ("Ctrl+Wheel", "zoom"),
)
#: Where navigation keys go; shown in Help > Keyboard shortcuts.
FOCUS_RULE = (
    "Navigation keys act on the slice view when the pointer is over it or it has the "
    "keyboard focus (click it, or press Escape), whichever control had the focus before. "
    "While you type in a text field (ids, filter, palette name, a number box), the keys "
    "that edit text (Left, Right, Home, End, [ and ]) stay in the field; Up, Down, PageUp "
    "and PageDown still go to the view when the pointer is over it. With the pointer "
    "elsewhere, keys go to the control that has the focus."
)


def key_text(key: int | str | QKeySequence.StandardKey | QKeySequence) -> str:
    """A key or shortcut as Help shows it ("Ctrl+G", "PgUp", "]")."""
    seq = key if isinstance(key, QKeySequence) else QKeySequence(key)
    return seq.toString(QKeySequence.SequenceFormat.NativeText)


def shortcut_rows(specs: tuple[ActionSpec, ...] = MENUS) -> list[tuple[str, str]]:
    """(keys, what they do) for every entry of the tables that define the keys: the menus'
    shortcuts, the slice view's keys (grouped by what they do), the other keys and the
    mouse. Help > Keyboard shortcuts shows exactly these."""
    rows: list[tuple[str, str]] = []
    for spec in specs:
        if spec.shortcut is not None and spec.text != SEP:
            keys = key_text(spec.shortcut)
            if not keys:
                continue  # a standard key this platform binds to nothing (Quit off KDE/GNOME)
            what = spec.menu.replace("&", "") + " > " + spec.text.replace("&", "")
            rows.append((keys, what))
    groups: dict[str, list[str]] = {}
    for k in VIEW_KEY_SPECS:
        groups.setdefault(k.does, []).append(key_text(k.key))
    rows += [(", ".join(keys), does) for does, keys in groups.items()]
    rows += list(OTHER_KEYS) + list(MOUSE)
    return rows


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
