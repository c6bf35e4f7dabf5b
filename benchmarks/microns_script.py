"""The MICrONS documentation's ImageryClient example, with local sources.

    python benchmarks/microns_script.py {imageryclient|imagery_gui} IMAGE_SRC SEG_SRC X,Y,Z OUT.png

Unchanged but for the import line (and the sources, given here instead of a CAVE
datastack): ``ImageryClient``, ``image_and_segmentation_cutout(ctr,
split_segmentations=True, bbox_size=(1024, 1024))``, ``composite_overlay(segs,
imagery=image, palette='husl')``, save a PNG. ``bench_api.py`` runs it as a fresh process
with either library.
"""

import sys

if sys.argv[1] == "imageryclient":
    import imageryclient as ic
else:
    import imagery_gui as ic

img_src, seg_src, out = sys.argv[2], sys.argv[3], sys.argv[5]
ctr = [int(v) for v in sys.argv[4].split(",")]

img_client = ic.ImageryClient(image_source=img_src, segmentation_source=seg_src)
image, segs = img_client.image_and_segmentation_cutout(
    ctr, split_segmentations=True, bbox_size=(1024, 1024)
)
ic.composite_overlay(segs, imagery=image, palette="husl").save(out)
