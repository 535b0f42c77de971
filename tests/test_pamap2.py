import numpy as np
import pytest
from conftest import tree_digest
from rawfiles import (SUBJECT101_EXPECTED, pamap2_table,
                      write_pamap2)

from gafkd.errors import ConfigError, InputError
from gafkd.readers.pamap2 import CHANNEL_SETS, COLUMNS, DEFAULT_CLASS_MAP, read_pamap2


def test_lab_protocol_windows(pamap2_folder):
    folder, tables = pamap2_folder
    ws = read_pamap2(folder, subjects=[101])
    assert ws.X.shape == (sum(SUBJECT101_EXPECTED.values()), 40, 100)
    assert len(ws.channel_names) == 40 and ws.channel_names[0] == "heart_rate"
    assert not any("orientation" in c for c in ws.channel_names)
    assert ws.sampling_rate_hz == pytest.approx(100 / 3)
    names = [DEFAULT_CLASS_MAP[a] for a in SUBJECT101_EXPECTED]
    counts = {name: int((ws.y == ws.class_names.index(name)).sum()) for name in names}
    assert counts == {DEFAULT_CLASS_MAP[a]: n for a, n in SUBJECT101_EXPECTED.items()}
    assert ws.dropped == {"nan": 3}
    assert ws.class_names == [DEFAULT_CLASS_MAP[a] for a in DEFAULT_CLASS_MAP]


def test_window_contents_are_downsampled_raw_rows(pamap2_folder):
    folder, tables = pamap2_folder
    ws = read_pamap2(folder, subjects=[101])
    down = tables[101][::3]
    heart_rate = np.array(
        [tables[101][: 3 * i + 1, 2][~np.isnan(tables[101][: 3 * i + 1, 2])][-1]
         for i in range(len(down))])
    # The first kept window is lying, starting at downsampled sample 22.
    first = ws.X[0]
    acc = COLUMNS.index("ankle_mag_z")
    np.testing.assert_allclose(first[ws.channel_names.index("ankle_mag_z")],
                               down[22:122, acc], atol=2e-6)
    np.testing.assert_allclose(first[0], heart_rate[22:122], atol=2e-6)  # forward-filled


def test_named_channel_set_and_class_map(pamap2_folder):
    folder, _ = pamap2_folder
    ws = read_pamap2(folder, channels="hand_acc16", class_map={1: "rest", 4: "move", 24: "move"},
                     subjects=[101])
    assert ws.channel_names == CHANNEL_SETS["hand_acc16"]
    assert ws.class_names == ["rest", "move"]
    assert np.bincount(ws.y).tolist() == [5, 6 + 1]


def test_all_subjects_and_short_ones(pamap2_folder):
    folder, _ = pamap2_folder
    ws = read_pamap2(folder)
    # Short subjects: 330 rows per activity -> runs [0, 110), [110, 220), [220, 330) after
    # downsampling; the starts 0, 110 and 220 (multiples of 22) give one window per activity.
    for subject in (102, 103, 104):
        assert (ws.subject == subject).sum() == 3
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
    expect_error(folder, r"subject106.dat: subject 106 has no usable window")


def test_all_nan_subject_is_counted_not_zero_filled(pamap2_folder):
    folder, _ = pamap2_folder
    table = pamap2_table([(1, 600)])
    table[:, COLUMNS.index("chest_gyro_y")] = np.nan
    write_pamap2(folder / "subject107.dat", table)
    expect_error(folder, r"subject107.dat: subject 107 has no usable window \(5 dropped for NaN\)",
                 subjects=[107])


def test_recording_shorter_than_window(pamap2_folder):
    folder, _ = pamap2_folder
    write_pamap2(folder / "subject108.dat", pamap2_table([(1, 240)]))
    expect_error(folder, r"subject108.dat: recording has 80 samples .* shorter than the window of 100")


def test_unknown_channel_set(pamap2_folder):
    folder, _ = pamap2_folder
    expect_error(folder, "unknown PAMAP2 channel set 'wrist'", error=ConfigError, channels="wrist")
    expect_error(folder, r"unknown PAMAP2 channel\(s\) \['hand_orientation_9'\]", error=ConfigError,
                 channels=["hand_orientation_9"])


def test_class_map_with_non_pamap2_id(pamap2_folder):
    folder, _ = pamap2_folder
    expect_error(folder, r"\[8\] are not PAMAP2 activity ids", error=ConfigError,
                 class_map={1: "lying", 8: "nothing"})
