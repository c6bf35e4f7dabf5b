"""PyInstaller hook for caveclient: it reads its own version from installed metadata
(``importlib.metadata.version("CAVEclient")``) when imported."""

from PyInstaller.utils.hooks import collect_data_files, copy_metadata

datas = collect_data_files("caveclient") + copy_metadata("caveclient")
