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


@dataclass
class Settings:
    image_source: str | None = None
    segmentation_source: str | None = None
    recent: list[list[str | None]] = field(default_factory=list)  # [image, segmentation]
    alpha: float = 0.2
    selected_alpha: float = 0.6
    outline: bool = False
    width: int = 3
    side: str = "in"
    merge_outline: bool = False
    palette: str = "husl"
    color_seed: int = 0
    show_all: bool = True
    cache_mb: int = 768
    disk_cache: bool = False
    fetch_timeout_s: float = 10.0
    # Read slabs in a separate process (see imagery_gui.model.fetchproc); False reads in
    # threads of the viewer's process (slower frames while a remote read is decoding).
    read_process: bool = True
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
