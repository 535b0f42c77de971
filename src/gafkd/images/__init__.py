"""The image stage: windows.h5 -> images.h5.

Owns the encodings' builders: GASF/GADF (gaf) and the quantum GAF (qgaf) on their compiled kernel
(gramian), MTF (mtf), persistence images (persistence), the choice among them (encode), and the
image cache that streams windows through them (cache).

May import: gafkd.images itself, gafkd.data and the shared top-level modules (gafkd.encodings
names the image methods). Nothing from train, distill or report.
"""
