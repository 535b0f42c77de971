import json
import tracemalloc

import h5py
import numpy as np
import pytest

from gafkd.h5checked import create_h5, seal, write_checked
from gafkd.errors import ConfigError, InputError
from gafkd.images.gaf import gramian_angular_field
from gafkd.report.figures import plot_gallery
from gafkd.images.cache import build_images, images_per_chunk, read_images
from gafkd.data.windows import build_windows, fingerprint, read_windows

PYTS_METHOD = {"gasf": "summation", "gadf": "difference"}


def pyts_image():
    """pyts.image, imported when a test first needs it: importing it compiles its numba kernels
    (about 40 s on two cores), which collecting the suite should not pay in every worker."""
    import pyts.image
    return pyts.image


@pytest.mark.parametrize("method", ["gasf", "gadf"])
@pytest.mark.parametrize("length,size", [(100, 64), (500, 64), (1000, 64), (64, 64), (37, 16)])
def test_gaf_matches_pyts(method, length, size):
    series = np.random.default_rng(length).normal(size=(50, length)).astype(np.float32)
    expected = pyts_image().GramianAngularField(image_size=size, method=PYTS_METHOD[method]).fit_transform(series)
    got = gramian_angular_field(series, size, method)
    assert got.dtype == np.float32 and got.shape == (50, size, size)
    assert np.abs(got - expected).max() < 3e-5


@pytest.mark.parametrize("length", [100, 500])
def test_constant_series_gives_no_nan_and_matches_pyts(length):
    series = np.full((2, length), 3.7, dtype=np.float32)
    series[1] = 0.0
    got = gramian_angular_field(series, 64, "gasf")
    assert np.isfinite(got).all()
    expected = pyts_image().GramianAngularField(image_size=64).fit_transform(series)
    assert np.abs(got - expected).max() < 3e-5


@pytest.fixture
def demo_windows(tmp_path):
    h5 = tmp_path / "windows.h5"
    spec = {"source": "basicmotions", "split": {"kind": "predefined", "val_fraction": 0.25, "seed": 0}}
    build_windows("basicmotions", spec, h5, tmp_path / "summary.md")
    return h5


def mtf_inputs(rng):
    """Series that exercise pyts' MTF: smooth and noisy, lengths that divide the image size and
    lengths that do not, repeated values (quantile edges that coincide and are dropped), a
    constant series, a spike, and values far from 0."""
    walk = np.cumsum(rng.normal(size=(6, 500)), axis=1)
    return [(rng.normal(size=(5, 100)), 32), (walk, 64), (rng.normal(size=(4, 37)), 5),
            (rng.integers(0, 3, size=(6, 120)).astype(float), 16), (np.full((2, 50), 0.7), 10),
            (np.r_[np.zeros(99), 40.0][None] + 1e6, 33), (rng.normal(size=(3, 64)), 64)]


def test_mtf_is_pyts_value_for_value(demo_windows):
    """gafkd's MTF equals pyts' MarkovTransitionField (its defaults) bit for bit on float32
    series, BasicMotions' among them, so that images (and every number trained on them) do not
    change with the builder."""
    from gafkd.images.mtf import markov_transition_field

    rng = np.random.default_rng(3)
    basicmotions = read_windows(demo_windows).X.reshape(-1, 100)
    for series, size in [*mtf_inputs(rng), (basicmotions, 32), (basicmotions, 64)]:
        series = series.astype(np.float32)
        expected = pyts_image().MarkovTransitionField(image_size=size).fit_transform(series)
        assert np.array_equal(markov_transition_field(series, size), expected.astype(np.float32)), (series.shape, size)
        assert np.abs(expected).max() > 0


def test_mtf_bins_drop_repeated_quantile_edges_as_pyts_does():
    from gafkd.images.mtf import quantile_bins

    # 0 0 0 0 0 0 1 2: the lower percentiles coincide at 0; pyts keeps one edge of them
    bins = quantile_bins(np.array([[0, 0, 0, 0, 0, 0, 1, 2]], dtype=np.float32))
    from pyts.preprocessing import KBinsDiscretizer
    expected = KBinsDiscretizer(n_bins=8, strategy="quantile", raise_warning=False).fit_transform(
        np.array([[0, 0, 0, 0, 0, 0, 1, 2]], dtype=np.float64))
    assert np.array_equal(bins, expected) and bins[0, 0] == 0 and bins[0, -1] > bins[0, -2] > 0


@pytest.mark.parametrize("method", ["gasf", "gadf", "mtf"])
def test_cache_matches_pyts_in_windows_order(demo_windows, tmp_path, method):
    out = tmp_path / f"images_{method}32.h5"
    build_images(demo_windows, out, method=method, size=32, chunk_windows=7)  # several chunks
    windows = read_windows(demo_windows)
    images = read_images(out, windows.attrs["fingerprint"])
    assert images.dtype == np.float16 and images.shape == (80, 6, 32, 32)
    flat = windows.X.reshape(-1, 100)
    if method == "mtf":
        expected = pyts_image().MarkovTransitionField(image_size=32).fit_transform(flat)
    else:
        expected = pyts_image().GramianAngularField(image_size=32, method=PYTS_METHOD[method]).fit_transform(flat)
    diff = np.abs(images.reshape(-1, 32, 32).astype(np.float64) - expected).max()
    assert diff < 1e-3   # float16 storage


def test_a_stack_puts_each_channels_encodings_side_by_side_in_one_pass(demo_windows, tmp_path, monkeypatch):
    import gafkd.images.encode

    fingerprint_ = read_windows(demo_windows).attrs["fingerprint"]
    parts = {}
    for method in ("gasf", "gadf", "mtf"):
        build_images(demo_windows, tmp_path / f"{method}.h5", method=method, size=16)
        parts[method] = read_images(tmp_path / f"{method}.h5", fingerprint_)
    encoded, encode = [], gafkd.images.encode.encode

    def counted(series, size, method, out=None, **kwargs):
        encoded.append((method, len(series)))
        return encode(series, size, method, out, **kwargs)

    monkeypatch.setattr(gafkd.images.encode, "encode", counted)
    stack = tmp_path / "images_gasf+gadf+mtf16.h5"
    build_images(demo_windows, stack, method="gasf+gadf+mtf", size=16, chunk_windows=32)
    images = read_images(stack, fingerprint_, {"method": "gasf+gadf+mtf", "size": 16})
    assert images.dtype == np.float16 and images.shape == (80, 18, 16, 16)       # 3 encodings x 6 channels
    for c in range(6):
        for e, method in enumerate(("gasf", "gadf", "mtf")):
            assert np.array_equal(images[:, 3 * c + e], parts[method][:, c]), (c, method)
    # each block of windows encoded once per encoding, none read back from the parts' caches
    assert encoded == [(m, n * 6) for n in (32, 32, 16) for m in ("gasf", "gadf", "mtf")]
    with pytest.raises(InputError, match="method"):
        read_images(stack, fingerprint_, {"method": "gasf", "size": 16})


@pytest.mark.parametrize("method, message", [
    ("gasf+rp", "unknown encoding 'rp' in 'gasf\\+rp'"),
    ("gasf+", "unknown encoding ''"),
    ("gasf+mtf+gasf", "names gasf more than once"),
])
def test_bad_stacks_are_refused_writing_nothing(demo_windows, tmp_path, method, message):
    with pytest.raises(ConfigError, match=f"images.methods: .*{message}"):
        build_images(demo_windows, tmp_path / "a.h5", method=method)
    assert not (tmp_path / "a.h5").exists()


def test_cache_from_other_windows_is_rejected(demo_windows, tmp_path):
    out = tmp_path / "images_gasf16.h5"
    build_images(demo_windows, out, size=16)
    with pytest.raises(InputError, match="built from other windows"):
        read_images(out, "0" * 32)


def test_unknown_method_and_oversized_image_write_nothing(demo_windows, tmp_path):
    with pytest.raises(ConfigError, match="unknown encoding 'rp'"):
        build_images(demo_windows, tmp_path / "a.h5", method="rp")
    with pytest.raises(ConfigError, match="between 1 and the window length 100"):
        build_images(demo_windows, tmp_path / "b.h5", size=128)
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md", "windows.h5"]


def test_gallery_shows_the_first_window_of_each_class(demo_windows, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    out = tmp_path / "images_gasf16.h5"
    build_images(demo_windows, out, size=16)
    png = tmp_path / "gallery.png"
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)       # keep the figure as it was saved
    plot_gallery(demo_windows, out, png)
    monkeypatch.undo()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    windows = read_windows(demo_windows)
    images = read_images(out, windows.attrs["fingerprint"])
    fig = figures[0]
    axes = np.array(fig.axes).reshape(4, 3)                  # a row per class, 3 channels
    for row, name in enumerate(["Badminton", "Running", "Standing", "Walking"]):
        example = int(np.flatnonzero(windows.y == windows.class_names.index(name))[0])
        assert axes[row, 0].get_ylabel() == name
        for col in range(3):
            shown = axes[row, col].images[0]
            np.testing.assert_array_equal(shown.get_array(), images[example, col].astype(np.float32))
            assert shown.get_clim() == (-1, 1)
    assert [ax.get_title() for ax in axes[0]] == windows.channel_names[:3]
    assert "GASF 16x16" in fig._suptitle.get_text()
    plt.close(fig)


def synthetic_windows(path, channels, classes, length=64):
    X = np.random.default_rng(0).normal(size=(classes, channels, length)).astype(np.float32)
    y, subject = np.arange(classes), np.zeros(classes, dtype=np.int64)
    with create_h5(path) as f:
        for name, array in (("X", X), ("y", y), ("subject", subject)):
            write_checked(f, name, array)
        f.attrs.update(fingerprint=fingerprint(X, y, subject),
                       class_names=json.dumps([f"activity number {c}" for c in range(classes)]),
                       channel_names=json.dumps([f"heart_rate_{c}" for c in range(channels)]))
        seal(f)
    return path


@pytest.mark.parametrize("channels,classes", [(1, 14), (1, 1), (3, 4)])
def test_gallery_titles_do_not_overlap(tmp_path, monkeypatch, channels, classes):
    import matplotlib.pyplot as plt
    windows = synthetic_windows(tmp_path / "windows.h5", channels, classes)
    build_images(windows, tmp_path / "images.h5", size=16)
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)       # keep the figure as it was saved
    plot_gallery(windows, tmp_path / "images.h5", tmp_path / "gallery.png")
    fig = figures[0]
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    assert 0 <= title.x0 and title.x1 <= fig.bbox.width            # not cut off at the sides
    for ax in fig.axes:
        channel = ax.title.get_window_extent(renderer)
        assert channel.y1 <= title.y0 or not ax.title.get_text(), (ax.title.get_text(), channel, title)
    monkeypatch.undo()
    plt.close(fig)


def test_windows_file_contents(demo_windows, tmp_path):
    windows = read_windows(demo_windows)
    assert windows.X.shape == (80, 6, 100)
    fold = windows.folds["predefined"]
    assert (fold.split == 2).sum() == 40 and (fold.split[40:] == 2).all()
    train = windows.X[fold.split == 0]
    np.testing.assert_allclose(fold.mean, train.mean(axis=(0, 2)), rtol=1e-4, atol=1e-5)
    with h5py.File(demo_windows) as f:
        assert f.attrs["source"] == "basicmotions"
        assert f.attrs["sampling_rate_hz"] == 10.0
    summary = (tmp_path / "summary.md").read_text()
    assert "| Walking | 8 | 2 | 10 |" in summary


def test_image_cache_memory_is_bounded_by_the_chunk_not_the_dataset(tmp_path):
    n, channels, length, size = 2000, 3, 128, 32            # 31 chunks of 64 and one of 16
    windows = tmp_path / "windows.h5"
    X = np.random.default_rng(0).normal(size=(n, channels, length)).astype(np.float32)
    y = subject = np.zeros(n, dtype=np.int64)
    with h5py.File(windows, "w") as f:      # a file without checksums: checked by its fingerprint
        f.update(X=X, y=y, subject=subject)
        f.attrs.update(fingerprint=fingerprint(X, y, subject), channel_names='["x", "y", "z"]')
    del X
    tracemalloc.start()
    try:
        build_images(windows, tmp_path / "images.h5", size=size, chunk_windows=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    whole_dataset = n * channels * size * size * 4
    assert peak < whole_dataset / 8, (peak, whole_dataset)
    with h5py.File(windows) as wf, h5py.File(tmp_path / "images.h5") as imf:
        last = imf["images"][-1].astype(np.float32)
        assert np.abs(last - gramian_angular_field(wf["X"][-1], size)).max() < 1e-3


def test_image_cache_chunks_are_whole_images_of_a_few_megabytes(demo_windows, tmp_path):
    assert images_per_chunk(3, 64) == 128                    # GENE: 128 x 3 x 64 x 64 float16, 3.1 MB
    assert 128 * 3 * 64 * 64 * 2 <= 4 << 20 < 256 * 3 * 64 * 64 * 2
    assert images_per_chunk(40, 64) == 8                     # PAMAP2's 40 channels: 2.6 MB
    assert images_per_chunk(40, 256) == 1                    # an image over the size is a chunk alone
    build_images(demo_windows, tmp_path / "default.h5", size=32)
    # 3 images a chunk, streamed in blocks of 6 (the largest whole number of chunks <= 7)
    build_images(demo_windows, tmp_path / "small.h5", size=32, chunk_windows=7, chunk_images=3)
    with h5py.File(tmp_path / "default.h5") as default, h5py.File(tmp_path / "small.h5") as small:
        assert default["images"].chunks == (80, 6, 32, 32)   # all 80 windows in one chunk
        assert small["images"].chunks == (3, 6, 32, 32)
        np.testing.assert_array_equal(default["images"][()], small["images"][()])


def test_float32_caches_hold_the_encoder_values_and_are_told_apart(demo_windows, tmp_path):
    fingerprint_ = read_windows(demo_windows).attrs["fingerprint"]
    build_images(demo_windows, tmp_path / "half.h5", size=16)
    build_images(demo_windows, tmp_path / "single.h5", size=16, dtype="float32")
    half = read_images(tmp_path / "half.h5", fingerprint_, {"method": "gasf", "size": 16})
    single = read_images(tmp_path / "single.h5", fingerprint_, {"method": "gasf", "size": 16, "dtype": "float32"})
    assert half.dtype == np.float16 and single.dtype == np.float32
    expected = gramian_angular_field(read_windows(demo_windows).X.reshape(-1, 100), 16)
    assert np.array_equal(single.reshape(-1, 16, 16), expected)                # exactly the encoder's
    assert np.array_equal(half, single.astype(np.float16))
    with pytest.raises(InputError, match=r"dtype float16, expected float32"):
        read_images(tmp_path / "half.h5", fingerprint_, {"method": "gasf", "size": 16, "dtype": "float32"})
    with pytest.raises(InputError, match=r"dtype float32, expected float16"):
        read_images(tmp_path / "single.h5", fingerprint_, {"method": "gasf", "size": 16})
    with pytest.raises(ConfigError, match="images.dtype: 'float64'"):
        build_images(demo_windows, tmp_path / "double.h5", size=16, dtype="float64")


def test_an_image_caches_name_says_what_changes_it_and_defaults_keep_todays_names():
    from gafkd import grid, names

    def tag(method="gasf", **images):
        return grid.image_tag({"images": {"methods": [method], "size": 64, "pi": {"recipe": "lab"},
                                          "dtype": "float16", **images}}, method)

    assert tag() == "gasf64"
    assert tag(dtype="float32") == "gasf64-float32"
    assert tag(method="pi", pi={"recipe": "clean"}) == "pi64-clean"
    assert tag(method="gasf", pi={"recipe": "clean"}) == "gasf64"           # no persistence images
    assert tag(method="gasf+pi", size=32, pi={"recipe": "clean"}, dtype="float32") == "gasf+pi32-clean-float32"
    several = {"images": {"methods": ["gasf", "pi", "gasf+gadf+mtf"], "size": 64, "pi": {"recipe": "clean"},
                          "dtype": "float16"}}
    assert grid.image_tags(several) == ["gasf64", "pi64-clean", "gasf+gadf+mtf64"]     # one cache each
    for variant in ("", "-clean", "-float32", "-clean-float32"):
        assert names.image_variant(variant) == {"pi_recipe": "clean" if "clean" in variant else "lab",
                                               "qgaf": {"scaling": "minmax", "shots": None, "seed": 0},
                                               "dtype": "float32" if "32" in variant else "float16"}
    assert grid.image_settings({"images": {"methods": ["gasf"], "size": 64, "pi": {"recipe": "lab"},
                                           "dtype": "float16"}}, "gasf") == {"method": "gasf", "size": 64}
