"""Persistent settings: last sources, recent sources, style, window geometry, cache size.

A JSON file in the user's config folder (``$IMAGERY_GUI_SETTINGS_DIR`` overrides it, which
the tests use so they never read or write the user's settings). Settings can never block
start-up: an unreadable or malformed file is reported once and ignored, unknown or
ill-typed values fall back to defaults, and writes are atomic.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

MAX_RECENT = 10


def settings_dir() -> Path:
    env = os.environ.get("IMAGERY_GUI_SETTINGS_DIR")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("imagery-gui", appauthor=False))


#: Version of the file's layout. 1: style values at the top level (read and converted).
SETTINGS_VERSION = 2
_V1_STYLE = {
    "alpha": "alpha",
    "selected_alpha": "selected_alpha",
    "outline": "outline",
    "width": "width",
    "side": "side",
    "merge_outline": "merge_outline",
    "palette": "palette",
    "color_seed": "color_seed",
    "show_all": "show_unselected",
}


@dataclass
class Settings:
    version: int = SETTINGS_VERSION
    image_source: str | None = None
    segmentation_source: str | None = None
    recent: list[list[str | None]] = field(default_factory=list)  # [image, segmentation]
    # A snapshot of the viewer's OverlayStyle (imagery_gui.model.style); loading it goes
    # through the same validation as a user's change, so bad values never reach the view.
    style: dict[str, Any] = field(default_factory=dict)
    export_dir: str | None = None  # where the last export went
    cache_mb: int = 768
    disk_cache: bool = False
    fetch_timeout_s: float = 10.0
    # Read slabs in a separate process (see imagery_gui.model.fetchproc); False reads in
    # threads of the viewer's process (slower frames while a remote read is decoding).
    read_process: bool = True
    # The gallery's verdicts, keys 1-9 in this order (imagery_gui.qt.gallery_controller).
    review_verdicts: list[str] = field(default_factory=lambda: ["real", "false positive", "unsure"])
    gallery_tile_px: int = 160
    gallery_scrub: int = 5  # sections each way a hovered tile scrubs through
    gallery_advance: bool = True  # a verdict key moves on to the next tile
    geometry: str | None = None  # base64 of QMainWindow.saveGeometry()
    window_state: str | None = None

    def add_recent(self, image: str | None, segmentation: str | None) -> None:
        pair = [image, segmentation]
        self.recent = [p for p in self.recent if list(p) != pair]
        self.recent.insert(0, pair)
        del self.recent[MAX_RECENT:]

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or settings_dir() / "settings.json"
        out = cls()
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return out
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.warn(f"ignoring unreadable settings file {path}: {exc}", stacklevel=2)
            return out
        if not isinstance(data, dict):
            warnings.warn(f"ignoring settings file {path}: not a JSON object", stacklevel=2)
            return out
        if "style" not in data:  # version 1: style values at the top level
            data = dict(data)
            data["style"] = {new: data[old] for old, new in _V1_STYLE.items() if old in data}
        defaults = asdict(out)
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            default = defaults[f.name]
            if _same_kind(value, default):
                if isinstance(default, (int, float)) and not isinstance(default, bool):
                    value = type(default)(value)
                setattr(out, f.name, value)
        out.version = SETTINGS_VERSION
        out.recent = [
            list(p)[:2] for p in out.recent if isinstance(p, (list, tuple)) and len(p) >= 2
        ][:MAX_RECENT]
        return out

    def save(self, path: Path | None = None) -> None:
        """Write atomically; failures are warnings (settings are never worth a crash)."""
        path = path or settings_dir() / "settings.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.part")
            tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            warnings.warn(f"could not save settings to {path}: {exc}", stacklevel=2)


def _same_kind(value: Any, default: Any) -> bool:
    if default is None:
        return value is None or isinstance(value, str)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))
