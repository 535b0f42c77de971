"""Writers of small raw files in the exact formats gafkd reads (GENEActiv .mat, PAMAP2 .dat)."""

from pathlib import Path

import h5py
import numpy as np
import scipy.io

# PAMAP2's published column list (readme.pdf of the UCI dataset), written out here and never
# taken from gafkd: 54 columns, 1 timestamp (s), 2 activityID, 3 heart rate (bpm), 4-20 IMU hand,
# 21-37 IMU chest, 38-54 IMU ankle. Each IMU's 17 columns: 1 temperature (°C), 2-4 3D-acceleration
# ±16 g (13-bit), 5-7 3D-acceleration ±6 g (13-bit), 8-10 3D-gyroscope (rad/s), 11-13
# 3D-magnetometer (μT), 14-17 orientation (invalid). Python indices are the column numbers − 1.
PAMAP2_COLUMNS = [
    "timestamp", "activity_id", "heart_rate",                                          # 0-2
    "hand_temp",                                                                       # 3
    "hand_acc16_x", "hand_acc16_y", "hand_acc16_z",                                    # 4-6
    "hand_acc6_x", "hand_acc6_y", "hand_acc6_z",                                       # 7-9
    "hand_gyro_x", "hand_gyro_y", "hand_gyro_z",                                       # 10-12
    "hand_mag_x", "hand_mag_y", "hand_mag_z",                                          # 13-15
    "hand_orientation_0", "hand_orientation_1", "hand_orientation_2", "hand_orientation_3",   # 16-19
    "chest_temp",                                                                      # 20
    "chest_acc16_x", "chest_acc16_y", "chest_acc16_z",                                 # 21-23
    "chest_acc6_x", "chest_acc6_y", "chest_acc6_z",                                    # 24-26
    "chest_gyro_x", "chest_gyro_y", "chest_gyro_z",                                    # 27-29
    "chest_mag_x", "chest_mag_y", "chest_mag_z",                                       # 30-32
    "chest_orientation_0", "chest_orientation_1", "chest_orientation_2", "chest_orientation_3",  # 33-36
    "ankle_temp",                                                                      # 37
    "ankle_acc16_x", "ankle_acc16_y", "ankle_acc16_z",                                 # 38-40
    "ankle_acc6_x", "ankle_acc6_y", "ankle_acc6_z",                                    # 41-43
    "ankle_gyro_x", "ankle_gyro_y", "ankle_gyro_z",                                    # 44-46
    "ankle_mag_x", "ankle_mag_y", "ankle_mag_z",                                       # 47-49
    "ankle_orientation_0", "ankle_orientation_1", "ankle_orientation_2", "ankle_orientation_3",  # 50-53
]
PAMAP2_WIDTH = 54
RAW = {name: index for index, name in enumerate(PAMAP2_COLUMNS)}     # name -> 0-based column
ORIENTATION = [16, 17, 18, 19, 33, 34, 35, 36, 50, 51, 52, 53]
assert len(PAMAP2_COLUMNS) == PAMAP2_WIDTH
assert [RAW[f"{imu}_temp"] for imu in ("hand", "chest", "ankle")] == [3, 20, 37]
assert [RAW[n] for n in PAMAP2_COLUMNS if "orientation" in n] == ORIENTATION


def gene_name(subject, cls, window):
    return f"ID-{subject}_CLASS-{cls}_Window-{window:04d}.mat"


def write_mat_v5(path, **arrays):
    scipy.io.savemat(str(path), arrays)


def write_mat_v73(path, **arrays):
    """A MATLAB v7.3 file: HDF5 with MATLAB's 512-byte header and column-major arrays."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, array in arrays.items():
            dataset = f.create_dataset(key, data=np.asarray(array, dtype=np.float64).T)
            dataset.attrs["MATLAB_class"] = np.bytes_("double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as f:
        f.write(header)


def make_gene_folder(root, window=50, channels=3, subjects=(101, 102, 103, 104, 105),
                     classes=(1, 2, 3), per_class=2, seed=0):
    """GENE windows alternating v5/v7.3 and (W, C)/(C, W) files; returns {path: (C, W) signal}."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    counter = 0
    for subject in subjects:
        for cls in classes:
            for n in range(1, per_class + 1):
                signal = rng.normal(size=(channels, window)) + cls
                path = root / gene_name(subject, cls, n)
                stored = signal.T if counter % 2 == 0 else signal   # (W, C) or (C, W)
                writer = write_mat_v5 if (counter // 2) % 2 == 0 else write_mat_v73
                writer(path, xw=stored)
                written[path] = signal
                counter += 1
    return written


def pamap2_table(segments, seed=0):
    """(T, 54) PAMAP2 rows for consecutive (activity id, rows) segments at 100 Hz.

    Heart rate is given every 11th row (NaN between, as in the real files); orientation
    columns are all NaN so that reading them would drop every window.
    """
    rng = np.random.default_rng(seed)
    total = sum(n for _, n in segments)
    table = rng.normal(size=(total, PAMAP2_WIDTH))
    table[:, 0] = np.arange(total) / 100.0
    table[:, 1] = np.concatenate([np.full(n, a) for a, n in segments])
    table[:, 2] = np.nan
    table[::11, 2] = 60 + np.arange(len(table[::11, 2]))
    table[:, ORIENTATION] = np.nan
    return table


def write_pamap2(path, table):
    lines = []
    for row in table:
        tokens = ["NaN" if np.isnan(v) else ("%d" % v if i == 1 else "%.6f" % v)
                  for i, v in enumerate(row)]
        lines.append(" ".join(tokens))
    Path(path).write_text("\n".join(lines) + "\n")


# Subject 101's segments, with windows worked out by hand for window 100, step 22, downsample 3:
# downsampled: transient [0, 20), lying [20, 220), transient [220, 230), walking [230, 530),
# rope jumping [530, 650), watching TV (not a protocol activity) [650, 750).
# Constant-label window starts: lying 22..110 (5), walking 242..418 (9), rope 550 (1).
SUBJECT101 = [(0, 60), (1, 600), (0, 30), (4, 900), (24, 360), (9, 300)]
# A NaN at raw row 900 (downsampled sample 300) falls in walking windows 242, 264, 286.
SUBJECT101_NAN_ROW = 900
SUBJECT101_EXPECTED = {1: 5, 4: 9 - 3, 24: 1}


def make_pamap2_folder(root, extra_subjects=(102, 103, 104)):
    """Subject 101 as above (with NaN runs) plus short subjects doing the same three activities
    (long enough for one lying window under the lab protocol, which starts at sample 22)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    table = pamap2_table(SUBJECT101, seed=101)
    hand_acc = RAW["hand_acc16_x"]
    table[SUBJECT101_NAN_ROW, hand_acc] = np.nan
    table[1201:1203, hand_acc] = np.nan          # rows dropped by the downsampling
    write_pamap2(root / "subject101.dat", table)
    tables = {101: table}
    for subject in extra_subjects:
        short = pamap2_table([(1, 396), (4, 330), (24, 330)], seed=subject)
        write_pamap2(root / f"subject{subject}.dat", short)
        tables[subject] = short
    return tables
