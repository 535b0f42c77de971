import json

import h5py
import numpy as np
import pytest
from conftest import tree_digest
from rawfiles import PAMAP2_COLUMNS, RAW, SUBJECT101_EXPECTED, pamap2_table, write_pamap2

from gafkd.errors import ConfigError, InputError
from gafkd.data.windows import build_windows
from gafkd.data.readers.pamap2 import DEFAULT_CLASS_MAP, DEFAULTS, PROTOCOLS, check_protocol, read_pamap2
from gafkd.data.readers.pamap2_format import ACTIVITIES, COLUMNS, LAB_THRESHOLDS


# Channel sets as 0-based columns of the published layout (see rawfiles.PAMAP2_COLUMNS).
CHANNEL_COLUMNS = {
    "hand_acc16": [4, 5, 6],
    "acc16": [4, 5, 6, 21, 22, 23, 38, 39, 40],
    "imu_acc_gyro": [4, 5, 6, 10, 11, 12, 21, 22, 23, 27, 28, 29, 38, 39, 40, 44, 45, 46],
    "lab40": [2, *range(3, 16), *range(20, 33), *range(37, 50)],   # heart rate, 3 × 13 IMU columns
}


def test_column_layout_is_the_published_one():
    assert len(COLUMNS) == 54
    assert COLUMNS == PAMAP2_COLUMNS
    assert (COLUMNS[4], COLUMNS[7], COLUMNS[21], COLUMNS[24], COLUMNS[38], COLUMNS[41]) == (
        "hand_acc16_x", "hand_acc6_x", "chest_acc16_x", "chest_acc6_x", "ankle_acc16_x", "ankle_acc6_x")


@pytest.mark.parametrize("channels", sorted(CHANNEL_COLUMNS))
def test_channel_sets_read_the_published_columns(tmp_path, channels):
    # 600 rows of lying; every column but the orientation ones holds its own number plus
    # row / 1000, and heart rate has a reading on every row (nothing to forward-fill).
    table = pamap2_table([(1, 600)])
    rows = np.arange(len(table)) / 1000
    for column in range(2, 54):
        if column not in (16, 17, 18, 19, 33, 34, 35, 36, 50, 51, 52, 53):
            table[:, column] = column + rows
    write_pamap2(tmp_path / "subject101.dat", table)
    ws = read_pamap2(tmp_path, channels=channels, protocol="clean")
    columns = CHANNEL_COLUMNS[channels]
    assert ws.channel_names == [PAMAP2_COLUMNS[c] for c in columns]
    # clean protocol: every third row, windows of 100 samples from 0, 22, ..., 88
    assert ws.X.shape == (5, len(columns), 100)
    samples = 3 * (22 * np.arange(5)[:, None] + np.arange(100)[None, :])      # (window, sample)
    for c, column in enumerate(columns):
        np.testing.assert_allclose(ws.X[:, c, :], table[samples, column], rtol=0, atol=1e-4)


def test_clean_protocol_windows(pamap2_folder):
    folder, tables = pamap2_folder
    ws = read_pamap2(folder, subjects=[101], protocol="clean")
    assert ws.X.shape == (sum(SUBJECT101_EXPECTED.values()), 40, 100)
    assert len(ws.channel_names) == 40 and ws.channel_names[0] == "heart_rate"
    assert not any("orientation" in c for c in ws.channel_names)
    assert ws.sampling_rate_hz == pytest.approx(100 / 3)
    names = [DEFAULT_CLASS_MAP[a] for a in SUBJECT101_EXPECTED]
    counts = {name: int((ws.y == ws.class_names.index(name)).sum()) for name in names}
    assert counts == {DEFAULT_CLASS_MAP[a]: n for a, n in SUBJECT101_EXPECTED.items()}
    # Worked out by hand from SUBJECT101: each left-out window counts for one reason, under the
    # label (or raw activity id) of its first sample.
    assert ws.dropped == {
        "label_change": {"unit": "windows", "total": 15, "detail": [
            {"subject": 101, "class": "0 (transient)", "count": 2},
            {"subject": 101, "class": "lying", "count": 4},
            {"subject": 101, "class": "walking", "count": 5},
            {"subject": 101, "class": "rope jumping", "count": 4}]},
        "not_in_class_map": {"unit": "windows", "total": 0, "detail": []},
        "nan": {"unit": "windows", "total": 3, "detail": [
            {"subject": 101, "class": "walking", "count": 3}]},
    }
    starts = len(range(0, 750 - 100 + 1, 22))          # 750 samples after downsampling
    assert len(ws.X) + sum(d["total"] for d in ws.dropped.values()) == starts
    assert ws.class_names == [DEFAULT_CLASS_MAP[a] for a in DEFAULT_CLASS_MAP]     # activity-id order
    assert ws.class_names[0] == "lying"


def test_clean_window_contents_are_downsampled_raw_rows(pamap2_folder):
    folder, tables = pamap2_folder
    ws = read_pamap2(folder, subjects=[101], protocol="clean")
    down = tables[101][::3]
    heart_rate = np.array(
        [tables[101][: 3 * i + 1, 2][~np.isnan(tables[101][: 3 * i + 1, 2])][-1]
         for i in range(len(down))])
    # The first kept window is lying, starting at downsampled sample 22.
    first = ws.X[0]
    acc = RAW["ankle_mag_z"]
    np.testing.assert_allclose(first[ws.channel_names.index("ankle_mag_z")],
                               down[22:122, acc], atol=2e-6)
    np.testing.assert_allclose(first[0], heart_rate[22:122], atol=2e-6)  # forward-filled


def test_clean_counts_windows_of_activities_outside_the_class_map(tmp_path):
    # 400 samples: lying [0, 200), watching TV [200, 400); starts 0, 22, ..., 286.
    write_pamap2(tmp_path / "subject101.dat", pamap2_table([(1, 600), (9, 600)]))
    ws = read_pamap2(tmp_path, channels="acc16", protocol="clean")
    assert len(ws.X) == 5                                           # 0 ... 88
    assert ws.dropped["label_change"]["detail"] == [
        {"subject": 101, "class": "lying", "count": 5}]             # 110 ... 198
    assert ws.dropped["not_in_class_map"]["detail"] == [
        {"subject": 101, "class": "9 (watching TV)", "count": 4}]   # 220 ... 286
    assert ws.dropped["nan"]["total"] == 0


def test_dropped_per_subject_and_merged_class(pamap2_folder):
    folder, _ = pamap2_folder
    ws = read_pamap2(folder, class_map={1: "rest", 4: "move", 24: "move"}, protocol="lab")
    by_subject = {}
    for row in ws.dropped["label_change"]["detail"]:
        by_subject.setdefault(row["subject"], {})[row["class"]] = row["count"]
    # Short subjects (lab): 352 samples, starts 22 ... 242; the lying run [0, 132) ends in
    # walking for 44, 66, 88, 110, and walking ends in rope jumping for 154 ... 220, but both
    # are "move" now, so those windows are kept.
    for subject in (102, 103, 104):
        assert by_subject[subject] == {"rest": 4}
    assert ws.dropped["label_change"]["total"] == sum(
        n for classes in by_subject.values() for n in classes.values())


def test_summary_counts_what_was_left_out(pamap2_folder, tmp_path):
    folder, _ = pamap2_folder
    spec = {"source": "pamap2", "raw": str(folder),
            "class_map": {1: "lying", 4: "walking", 24: "rope jumping"},
            "split": {"kind": "loso", "val_fraction": 0.25, "seed": 0}}
    out = tmp_path / "out"
    build_windows("p", spec, out / "windows.h5", out / "windows_summary.md")
    summary = (out / "windows_summary.md").read_text()
    for row in ["| reason | subject | class or activity | left out |",
                "| label change inside the window | 101 | lying | 5 windows |",
                "| label change inside the window | 104 | walking | 4 windows |",
                "| label change inside the window | **all** | **all** | 33 windows |",
                "| rows deleted: activity not in the class map | 101 | 0 (transient) | 90 rows |",
                "| rows deleted: activity not in the class map | 101 | 9 (watching TV) | 300 rows |",
                "| rows deleted: activity not in the class map | **all** | **all** | 390 rows |"]:
        assert row + "\n" in summary
    with h5py.File(out / "windows.h5") as f:
        dropped = json.loads(f.attrs["counts"])["dropped"]
    assert dropped["label_change"]["total"] == 33 and dropped["rows_not_in_class_map"]["total"] == 390


def test_nan_spellings_are_missing_values_and_other_words_are_errors(tmp_path):
    table = pamap2_table([(1, 600)])
    write_pamap2(tmp_path / "subject101.dat", table)
    path = tmp_path / "subject101.dat"
    lines = path.read_text().splitlines()
    for i, token in enumerate(["nan", "-nan", "-NaN"]):
        tokens = lines[i].split()
        tokens[4] = token
        lines[i] = " ".join(tokens)
    path.write_text("\n".join(lines) + "\n")
    ws = read_pamap2(tmp_path, protocol="clean", channels="acc16")
    assert len(ws.X) == 4 and ws.dropped["nan"]["total"] == 1   # the window at 0 holds row 0
    tokens = lines[5].split()
    tokens[4] = "None"
    lines[5] = " ".join(tokens)
    path.write_text("\n".join(lines) + "\n")
    expect_error(tmp_path, r"subject101.dat, line 6: non-numeric token 'None'")


def test_named_channel_set_and_class_map(pamap2_folder):
    folder, _ = pamap2_folder
    ws = read_pamap2(folder, channels="hand_acc16", class_map={1: "rest", 4: "move", 24: "move"},
                     subjects=[101], protocol="clean")
    assert ws.channel_names == ["hand_acc16_x", "hand_acc16_y", "hand_acc16_z"]
    assert ws.class_names == ["rest", "move"]
    assert np.bincount(ws.y).tolist() == [5, 6 + 1]


def test_all_subjects_and_short_ones(pamap2_folder):
    folder, _ = pamap2_folder
    ws = read_pamap2(folder, protocol="clean")
    # Short subjects: 396, 330, 330 rows -> runs [0, 132), [132, 242), [242, 352) after
    # downsampling; the starts 0 and 22 give two lying windows, 132 and 242 one each of the others.
    for subject in (102, 103, 104):
        assert (ws.subject == subject).sum() == 4
    lab = read_pamap2(folder)
    # the lab's windows start at 22: one lying window (22), one walking (132), one rope jumping (242)
    for subject in (102, 103, 104):
        assert [lab.class_names[c] for c in lab.y[lab.subject == subject]] == [
            "lying", "walking", "rope jumping"]
    assert sorted(np.unique(ws.subject)) == [101, 102, 103, 104]


def expect_error(folder, match, error=InputError, **kwargs):
    before = tree_digest(folder) if folder.exists() else None
    with pytest.raises(error, match=match):
        read_pamap2(folder, **kwargs)
    if before is not None:
        assert tree_digest(folder) == before, "raw files must never be modified"


def test_missing_folder(tmp_path):
    expect_error(tmp_path / "Protocol", "does not exist")


def test_no_subject_files(tmp_path):
    expect_error(tmp_path, "no subjectNNN.dat files")


def test_file_name_off_pattern(pamap2_folder):
    folder, _ = pamap2_folder
    (folder / "subject_7.dat").write_text("1 2 3\n")
    expect_error(folder, "subject_7.dat: file name does not match")


def test_wrong_column_count(pamap2_folder):
    folder, tables = pamap2_folder
    lines = (folder / "subject102.dat").read_text().splitlines()
    lines[41] = lines[41] + " 1.0"
    (folder / "subject102.dat").write_text("\n".join(lines) + "\n")
    expect_error(folder, r"subject102.dat, line 42: 55 columns, expected 54")


def test_missing_column(pamap2_folder):
    folder, tables = pamap2_folder
    lines = (folder / "subject103.dat").read_text().splitlines()
    lines[7] = lines[7].rsplit(" ", 1)[0]
    (folder / "subject103.dat").write_text("\n".join(lines) + "\n")
    expect_error(folder, r"subject103.dat, line 8: 53 columns, expected 54")


def test_non_numeric_token(pamap2_folder):
    folder, _ = pamap2_folder
    lines = (folder / "subject104.dat").read_text().splitlines()
    tokens = lines[99].split()
    tokens[5] = "1.2.3"
    lines[99] = " ".join(tokens)
    (folder / "subject104.dat").write_text("\n".join(lines) + "\n")
    expect_error(folder, r"subject104.dat, line 100: non-numeric token '1.2.3'")


def test_unknown_activity_id(pamap2_folder):
    folder, _ = pamap2_folder
    table = pamap2_table([(1, 330), (8, 30)])
    write_pamap2(folder / "subject105.dat", table)
    expect_error(folder, r"subject105.dat, line 331: unknown PAMAP2 activity id 8")


def test_subject_without_usable_window(pamap2_folder):
    folder, _ = pamap2_folder
    write_pamap2(folder / "subject106.dat", pamap2_table([(9, 600), (0, 300)]))
    expect_error(folder, r"subject106.dat: subject 106 has no usable window", protocol="clean")


def test_lab_subject_without_usable_window(pamap2_folder):
    folder, _ = pamap2_folder
    # 200 samples, lying up to 96: the starts 22, 44, 66, 88 all begin in lying and end in walking.
    write_pamap2(folder / "subject106.dat", pamap2_table([(1, 290), (4, 310)]))
    expect_error(folder, r"subject106.dat: subject 106 has no usable window "
                         r"\(4 dropped for a label change\)", subjects=[106], protocol="lab")


def test_all_nan_subject_is_counted_not_zero_filled(pamap2_folder):
    folder, _ = pamap2_folder
    table = pamap2_table([(1, 600)])
    table[:, RAW["chest_gyro_y"]] = np.nan
    write_pamap2(folder / "subject107.dat", table)
    expect_error(folder, r"subject107.dat: subject 107 has no usable window \(5 dropped for NaN\)",
                 subjects=[107], protocol="clean")


def test_lab_sets_nan_to_zero_before_scaling(pamap2_folder):
    folder, _ = pamap2_folder
    table = pamap2_table([(1, 600)])
    table[:, RAW["chest_gyro_y"]] = np.nan
    write_pamap2(folder / "subject107.dat", table)
    ws = read_pamap2(folder, subjects=[107], protocol="lab")
    low, high = LAB_THRESHOLDS["chest_gyro_y"]
    gyro = ws.X[:, ws.channel_names.index("chest_gyro_y")]
    np.testing.assert_allclose(gyro, -low / (high - low), rtol=1e-6)
    assert ws.dropped["label_change"]["total"] == 0 and len(ws.X) == 4   # starts 22, 44, 66, 88


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recording_shorter_than_window(pamap2_folder, protocol):
    folder, _ = pamap2_folder
    write_pamap2(folder / "subject108.dat", pamap2_table([(1, 240)]))
    expect_error(folder, r"subject108.dat: recording has 80 samples .* shorter than the window of 100",
                 protocol=protocol)


def test_lab_recording_shorter_than_window_once_transients_are_deleted(pamap2_folder):
    folder, _ = pamap2_folder
    write_pamap2(folder / "subject108.dat", pamap2_table([(0, 600), (1, 240)]))
    expect_error(folder, r"subject108.dat: recording has 80 samples after deleting the rows "
                         r"outside the class map and downsampling by 3, shorter than the window "
                         r"of 100",
                 subjects=[108], protocol="lab")
    # The clean protocol keeps the transient samples: 280 of them, but no lying window.
    expect_error(folder, r"subject108.dat: subject 108 has no usable window", subjects=[108],
                 protocol="clean")


def test_unknown_channel_set(pamap2_folder):
    folder, _ = pamap2_folder
    expect_error(folder, "unknown PAMAP2 channel set 'wrist'", error=ConfigError, channels="wrist")
    expect_error(folder, r"unknown PAMAP2 channel\(s\) \['hand_orientation_9'\]", error=ConfigError,
                 channels=["hand_orientation_9"])


def test_class_map_with_non_pamap2_id(pamap2_folder):
    folder, _ = pamap2_folder
    expect_error(folder, r"\[8\] are not PAMAP2 activity ids", error=ConfigError,
                 class_map={1: "lying", 8: "nothing"})


def test_check_protocol():
    assert PROTOCOLS == ("lab", "clean") and DEFAULTS["protocol"] == "lab"
    check_protocol("lab", "lab40")
    check_protocol("lab", "acc16")
    check_protocol("clean", ["hand_orientation_0"])
    with pytest.raises(ConfigError, match=r"unknown PAMAP2 protocol 'paper' \(known: lab, clean\)"):
        check_protocol("paper", "lab40")
    with pytest.raises(ConfigError, match=r"\['hand_orientation_0'\] cannot be used with protocol "
                                          r"'lab'.*fixed thresholds.*use protocol: clean"):
        check_protocol("lab", ["heart_rate", "hand_orientation_0"])


def test_lab_protocol_rejects_channels_without_thresholds(pamap2_folder):
    folder, _ = pamap2_folder
    expect_error(folder, r"\['chest_orientation_3'\] cannot be used with protocol 'lab'",
                 error=ConfigError, channels=["heart_rate", "chest_orientation_3"])
    expect_error(folder, "unknown PAMAP2 protocol 'paper'", error=ConfigError, protocol="paper")


# The lab's thresholds for its 40 columns (preprocessing_pamap2_2.py).
NORM_MAX = [202.0, 35.5, 47.6314, 155.532, 157.76, 45.5484, 62.2598, 61.728, 21.8452,
            13.1222, 14.2184, 137.544, 109.181, 100.543, 38.5625, 26.386, 153.582,
            37.2936, 23.9101, 61.9328, 36.9676, 15.5171, 5.97964, 2.94183, 80.4739,
            39.7391, 95.8415, 35.4375, 157.232, 157.293, 150.99, 61.9509, 62.0461,
            60.9357, 17.4204, 13.5882, 13.9617, 91.4247, 92.867, 146.651]
NORM_MIN = [0., 0., -114.755, -104.301, -73.0384, -61.1938, -61.8086, -61.4193, -27.8044,
            -17.8495, -14.2647, -103.941, -200.043, -163.608, 0., -29.0888, -38.1657, -57.2366,
            -32.9627, -39.7561, -56.0108, -10.1563, -5.06858, -3.99487, -70.0627, -122.48,
            -66.6847, 0., -155.068, -155.617, -156.179, -60.3067, -61.9064, -62.2629, -14.162,
            -13.0401, -14.0196, -172.865, -137.908, -102.232]


def lab_reference(path, window, step, downsample, class_ids):
    """The lab's steps, one loop each: raw ids of the kept windows, their (40, window)
    signals, the number left out, and how many kept windows have a label change inside."""
    data = np.loadtxt(path)
    rows = [row for row in data if row[1] in class_ids]
    y = [row[1] for row in rows]
    # Columns 2.. without the 3 x 4 orientation columns, as the lab's select_columns_opp.
    x = np.delete(np.array([row[2:] for row in rows]), np.r_[14:18, 31:35, 48:52], axis=1)
    last_hr = np.nan
    for t in range(len(x)):
        if np.isnan(x[t, 0]):
            x[t, 0] = last_hr
        else:
            last_hr = x[t, 0]
    for t in range(len(x)):
        for c in range(40):
            v = 0.0 if np.isnan(x[t, c]) else x[t, c]
            v = (v - NORM_MIN[c]) / (NORM_MAX[c] - NORM_MIN[c])
            if v > 1:
                v = 0.99
            if v < 0:
                v = 0.0
            x[t, c] = v
    x = [x[t] for t in range(0, len(x), downsample)]
    y = [y[t] for t in range(0, len(y), downsample)]
    windows, labels, left_out, mixed = [], [], 0, 0
    for j in range(step, len(y) - window, step):
        if y[j] == y[j + window - 1]:
            windows.append(np.array(x[j:j + window]).T)
            labels.append(y[j])
            mixed += len(set(y[j:j + window])) > 1
        else:
            left_out += 1
    return labels, np.array(windows), left_out, mixed


# Transients at the start and in the middle, watching TV (not a protocol activity) between
# walking and rope jumping, and 12 rows of running inside rope jumping.
LAB_SEGMENTS = [(0, 50), (1, 400), (0, 40), (4, 500), (9, 200), (24, 300), (5, 12), (24, 300)]


def make_lab_recording(path):
    table = pamap2_table(LAB_SEGMENTS, seed=7)
    hr, readings = RAW["heart_rate"], np.arange(0, len(table), 11)
    table[readings, hr] = 80 + readings % 40
    table[451:490:11, hr] = 150            # readings inside the middle transient
    table[550, hr] = 202.0                 # scales to exactly 1.0
    table[605, hr] = 230.0                 # above the maximum: 0.99
    table[660, hr] = 201.0                 # 0.995, kept as it is
    table[671, hr] = 202.000005            # 0.99 in float64 (1.0 if computed in float32)
    table[700:703, RAW["hand_gyro_x"]] = np.nan
    table[720:723, RAW["hand_acc16_y"]] = -500.0    # below the minimum: 0
    table[740:743, RAW["ankle_acc6_z"]] = 50.0      # above the maximum: 0.99
    write_pamap2(path, table)
    return table


@pytest.mark.parametrize("window, step, downsample", [(100, 22, 3), (20, 7, 2), (16, 1, 1)])
def test_lab_protocol_matches_the_labs_steps(tmp_path, window, step, downsample):
    make_lab_recording(tmp_path / "subject101.dat")
    ws = read_pamap2(tmp_path, window=window, step=step, downsample=downsample, protocol="lab")
    labels, windows, left_out, mixed = lab_reference(
        tmp_path / "subject101.dat", window, step, downsample, set(DEFAULT_CLASS_MAP))
    assert ws.X.dtype == np.float32 and ws.X.shape == (len(labels), 40, window)
    np.testing.assert_allclose(ws.X, windows, rtol=0, atol=1e-7)
    assert [ws.class_names[i] for i in ws.y] == [ACTIVITIES[a] for a in labels]
    # the lab's class indices (pamap2_load.py): 24 -> 0, 12 -> 8, 13 -> 9, 16 -> 10, 17 -> 11, the rest their id
    lab_index = {24: 0, 12: 8, 13: 9, 16: 10, 17: 11}
    assert ws.y.tolist() == [lab_index.get(a, a) for a in labels]
    assert ws.class_names[:2] == ["rope jumping", "lying"] and len(ws.class_names) == 12
    assert ws.dropped["label_change"]["total"] == left_out
    table = np.loadtxt(tmp_path / "subject101.dat")
    deleted = {"0 (transient)": int((table[:, 1] == 0).sum()),
               "9 (watching TV)": int((table[:, 1] == 9).sum())}
    assert ws.dropped["rows_not_in_class_map"] == {
        "unit": "rows", "total": sum(deleted.values()),
        "detail": [{"subject": 101, "class": c, "count": n} for c, n in deleted.items()]}
    assert ws.sampling_rate_hz == pytest.approx(100 / downsample)
    # The recording exercises every rule.
    assert left_out > 0 and mixed > 0
    assert (windows == 1.0).any() and (windows == 0.99).any() and (windows == 0.0).any()
    assert ((windows > 0.99) & (windows < 1.0)).any()


def test_lab_protocol_deletes_rows_outside_the_class_map(tmp_path):
    make_lab_recording(tmp_path / "subject101.dat")
    class_map = {4: "walking", 24: "rope jumping"}
    ws = read_pamap2(tmp_path, channels="lab40", class_map=class_map, protocol="lab")
    labels, windows, left_out, _ = lab_reference(tmp_path / "subject101.dat", 100, 22, 3, {4, 24})
    np.testing.assert_allclose(ws.X, windows, rtol=0, atol=1e-7)
    assert [ws.class_names[i] for i in ws.y] == [class_map[a] for a in labels]
    assert ws.dropped["label_change"]["total"] == left_out


def lab_scale(values, channel):
    """Min-max scaling of values inside the channel's thresholds."""
    low, high = LAB_THRESHOLDS[channel]
    return (values - low) / (high - low)


def test_lab_starts_one_step_in_and_stops_before_the_last_sample(tmp_path):
    # 894 rows -> 298 samples: clean starts 0, 22, ..., 198 (the last ends at the last sample),
    # lab starts 22, ..., 176.
    write_pamap2(tmp_path / "subject101.dat", pamap2_table([(1, 894)]))
    clean = read_pamap2(tmp_path, channels="acc16", protocol="clean")
    lab = read_pamap2(tmp_path, channels="acc16", protocol="lab")
    assert len(clean.X) == 10 and len(lab.X) == 8
    for c, channel in enumerate(lab.channel_names):
        np.testing.assert_allclose(lab.X[:, c], lab_scale(clean.X[1:9, c], channel), atol=1e-6)


def test_lab_deletes_transients_before_downsampling(tmp_path):
    table = pamap2_table([(1, 600), (0, 1), (1, 600)])
    write_pamap2(tmp_path / "subject101.dat", table)
    acc = "hand_acc16_x"
    clean = read_pamap2(tmp_path, channels=[acc], protocol="clean")
    lab = read_pamap2(tmp_path, channels=[acc], protocol="lab")
    # Clean: 401 samples, starts 0..286; the transient is sample 200, inside the windows
    # starting at 110..198.
    assert len(clean.X) == 14 - 5
    # Lab: one lying stream of 1200 rows, 400 samples, starts 22..286, none left out.
    assert len(lab.X) == 13 and lab.dropped["label_change"]["total"] == 0
    assert lab.dropped["rows_not_in_class_map"]["detail"] == [
        {"subject": 101, "class": "0 (transient)", "count": 1}]
    column = RAW[acc]
    deleted = lab_scale(np.delete(table, 600, axis=0)[::3, column], acc)
    kept_raw = lab_scale(table[::3, column], acc)
    last = lab.X[-1, 0]                                  # samples 286..385
    np.testing.assert_allclose(last, deleted[286:386], atol=1e-6)
    assert not np.allclose(last, kept_raw[286:386], atol=1e-3)


def test_lab_heart_rate_ignores_readings_of_deleted_rows(tmp_path):
    # Readings every 11th row: 0, 11, ..., 44 fall in the transient, the first lying one is 55.
    table = pamap2_table([(0, 50), (1, 600)])
    hr = RAW["heart_rate"]
    table[0:50:11, hr] = 150.0
    table[55, hr] = 101.0
    write_pamap2(tmp_path / "subject101.dat", table)
    kwargs = dict(channels=["heart_rate"], window=10, step=1, downsample=1)
    lab = read_pamap2(tmp_path, protocol="lab", **kwargs)
    # Lab window 0 starts at kept row 1 (raw row 51): no reading yet, so 0 until row 55.
    np.testing.assert_allclose(lab.X[0, 0], [0] * 4 + [101 / 202] * 6, atol=1e-7)
    # Clean carries the transient's last reading into the lying rows.
    clean = read_pamap2(tmp_path, protocol="clean", **kwargs)
    np.testing.assert_allclose(clean.X[0, 0], [150] * 5 + [101] * 5)
