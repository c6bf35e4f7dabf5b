"""PyInstaller hook for cloud-volume: what it imports by name at run time.

cloud-volume chooses its datasource (precomputed, graphene, ...) and frontend modules from
the URL, and imports its chunk codecs inside try/except so a missing one only matters
when a layer uses that encoding. Bundle every codec that is installed here.
"""

import importlib.util

from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

hiddenimports = collect_submodules("cloudvolume.datasource")
hiddenimports += collect_submodules("cloudvolume.frontends")
for codec in (
    "compressed_segmentation",  # compressed_segmentation encoding
    "simplejpeg",  # jpeg
    "fastremap",
    "brotli",  # HTTP content encodings
    "zstandard",
    "deflate",  # gzip
    "pyspng",  # png
    "fpzip",  # fpzip / kempressed
    "compresso",
    "crackle",
    "zfpc",
    "DracoPy",  # meshes (imported by cloud-volume's mesh code)
):
    if importlib.util.find_spec(codec) is not None:
        hiddenimports.append(codec)

datas = collect_data_files("cloudvolume") + copy_metadata("cloud-volume")
datas += copy_metadata("cloud-files")
