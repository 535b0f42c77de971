"""The image stage: windows.h5 -> images.h5.

Owns the encodings' builders: GASF/GADF and MTF (gaf) on their compiled kernel (gramian), the
quantum GAF (qgaf), persistence images (persistence), and the image cache that streams windows
through them (cache).

May import: gafkd.images itself, gafkd.data and the shared top-level modules (gafkd.encodings
names the image methods). Nothing from train, distill or report.
"""
