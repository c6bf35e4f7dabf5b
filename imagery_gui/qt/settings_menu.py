"""The Settings menu: memory cache, fetch timeout and cloud-volume's disk cache."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QInputDialog

from ..model import diskcache
from ..model.inputs import open_dataset
from ..model.view import describe_bytes
from .jobs import Job


class SettingsActions(QObject):
    """The window's Settings menu entries."""

    def __init__(self, win: Any) -> None:  # the MainWindow (not imported: no cycle)
        super().__init__(win)
        self.win = win

    def ask_cache_size(self) -> None:
        win = self.win
        mb, ok = QInputDialog.getInt(
            win, "Memory cache", "Memory for caches: decoded slices, outlines, chunk files (MiB):",
            win.settings.cache_mb, 64, 65536, 64,
        )  # fmt: skip
        if ok:
            win.settings.cache_mb = mb
            win.display.set_memory(mb * 1024**2)

    def ask_timeout(self) -> None:
        win = self.win
        s, ok = QInputDialog.getDouble(
            win, "Fetch timeout", "Report a source as not answering after (s):",
            win.settings.fetch_timeout_s, 1, 600, 1,
        )  # fmt: skip
        if ok:
            win.settings.fetch_timeout_s = s
            win.display.fetcher.set_timeout(s)

    def update_cache_menu(self) -> None:
        size = describe_bytes(diskcache.cache_bytes())
        self.win.act_clear_cache.setText(f"Clear disk cache ({size})")

    @Slot(bool)
    def set_disk_cache(self, on: bool) -> Job | None:
        """Turn cloud-volume's disk cache on or off: the open data is reopened with it in the
        background, keeping z, the camera, supervoxel mode and the timestamp."""
        win = self.win
        win.settings.disk_cache = bool(on)
        st = win.state
        if st.inputs is None or st.dataset is None:
            return None
        inputs, kw = st.inputs, win.dataset_kw()
        job = win.jobs.run(lambda progress: open_dataset(inputs, **kw), "reopen")
        job.succeeded.connect(lambda ds: self._on_reopened(ds, inputs, bool(on)))
        job.failed.connect(lambda exc: win.show_error(f"Could not reopen the data: {exc}"))
        return job

    def _on_reopened(self, ds, inputs, on: bool) -> None:
        st, display = self.win.state, self.win.display
        if st.inputs is not inputs or self.win.settings.disk_cache != on:
            return  # other data was opened, or the cache toggled again, since: keep that
        st.replace_dataset(ds)
        display.set_dataset(ds, st.timestamp, agglomerate=not st.supervoxels, z=st.z)
        display.set_camera(st.camera)

    def clear_disk_cache(self) -> None:
        diskcache.clear_cache()
        self.win.status.show_message("disk cache cleared", 3000)
