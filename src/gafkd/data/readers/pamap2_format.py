"""The PAMAP2 Protocol file's layout: its 54 columns, the activity ids, the named channel sets,
and the lab's fixed scaling thresholds of the lab40 channels."""

N_COLUMNS = 54

ACTIVITIES = {
    1: "lying", 2: "sitting", 3: "standing", 4: "walking", 5: "running", 6: "cycling",
    7: "Nordic walking", 9: "watching TV", 10: "computer work", 11: "car driving",
    12: "ascending stairs", 13: "descending stairs", 16: "vacuum cleaning", 17: "ironing",
    18: "folding laundry", 19: "house cleaning", 20: "playing soccer", 24: "rope jumping",
}
TRANSIENT = 0


def _column_names():
    names = ["timestamp", "activity_id", "heart_rate"]
    for imu in ("hand", "chest", "ankle"):
        names.append(f"{imu}_temp")
        for sensor in ("acc16", "acc6", "gyro", "mag"):
            names += [f"{imu}_{sensor}_{axis}" for axis in "xyz"]
        names += [f"{imu}_orientation_{i}" for i in range(4)]
    return names


COLUMNS = _column_names()
assert len(COLUMNS) == N_COLUMNS
_IMU_NO_ORIENTATION = [n for n in COLUMNS[3:] if "orientation" not in n]
CHANNEL_SETS = {
    "lab40": ["heart_rate"] + _IMU_NO_ORIENTATION,
    "hand_acc16": ["hand_acc16_x", "hand_acc16_y", "hand_acc16_z"],
    "acc16": [n for n in COLUMNS if "_acc16_" in n],
    "imu_acc_gyro": [n for n in COLUMNS if "_acc16_" in n or "_gyro_" in n],
}

# The lab's fixed scaling thresholds, in lab40 order.
_LAB_MIN = [0., 0., -114.755, -104.301, -73.0384, -61.1938, -61.8086, -61.4193, -27.8044,
            -17.8495, -14.2647, -103.941, -200.043, -163.608, 0., -29.0888, -38.1657, -57.2366,
            -32.9627, -39.7561, -56.0108, -10.1563, -5.06858, -3.99487, -70.0627, -122.48,
            -66.6847, 0., -155.068, -155.617, -156.179, -60.3067, -61.9064, -62.2629, -14.162,
            -13.0401, -14.0196, -172.865, -137.908, -102.232]
_LAB_MAX = [202.0, 35.5, 47.6314, 155.532, 157.76, 45.5484, 62.2598, 61.728, 21.8452,
            13.1222, 14.2184, 137.544, 109.181, 100.543, 38.5625, 26.386, 153.582,
            37.2936, 23.9101, 61.9328, 36.9676, 15.5171, 5.97964, 2.94183, 80.4739,
            39.7391, 95.8415, 35.4375, 157.232, 157.293, 150.99, 61.9509, 62.0461,
            60.9357, 17.4204, 13.5882, 13.9617, 91.4247, 92.867, 146.651]
LAB_THRESHOLDS = dict(zip(CHANNEL_SETS["lab40"], zip(_LAB_MIN, _LAB_MAX)))
