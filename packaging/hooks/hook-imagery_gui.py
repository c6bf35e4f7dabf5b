"""PyInstaller hook for imagery-gui itself: modules imported inside functions (the viewer,
the exporter, the read process) and the runtime icon."""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

hiddenimports = collect_submodules("imagery_gui")
datas = collect_data_files("imagery_gui") + copy_metadata("imagery-gui")
