"""The data stage: raw folders -> windows.h5.

Owns the raw-data readers (readers/), the download of raw archives (download), the raw-folder
listing (rawfolder), the WindowSet a reader returns (windowset), the folds and channel statistics
(splits) and the windows file (windows).

May import: gafkd.data itself and the shared top-level modules (gafkd.config, gafkd.errors,
gafkd.atomic, gafkd.h5checked, ...). Nothing from images, train, distill or report.
"""
