"""Q-GASF / Q-GADF (gafkd.images.qgaf) against a state-vector simulation of their circuit: one qubit in
|0>, RY(2 x_i), then RY(2 x_j) (summation) or RY(-2 x_j) (difference), ⟨Z⟩ measured."""

import re

import numpy as np
import pytest

from conftest import basicmotions_fold

from gafkd import grid
from gafkd import names
from gafkd.encodings import qgaf_settings
from gafkd.errors import ConfigError, InputError
from gafkd.images.encode import encode
from gafkd.images.gaf import gramian_angular_field
from gafkd.images.cache import build_images, read_images
from gafkd.images.qgaf import quantum_gaf
from gafkd.data.windows import read_windows

SIGN = {"qgasf": 1, "qgadf": -1}


def ry(theta):
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return np.array([[c, -s], [s, c]])


def circuit_expectation(a, b, sign):
    """⟨Z⟩ after RY(sign·2b) RY(2a) |0>, by matrices on the state vector."""
    state = ry(sign * 2 * b) @ ry(2 * a) @ np.array([1.0, 0.0])
    return abs(state[0]) ** 2 - abs(state[1]) ** 2


def reference_values(series, size, scaling):
    """The values entering the rotations: pyts' PAA, then qts2d's scaling."""
    from pyts.approximation import PiecewiseAggregateApproximation    # compiles numba kernels: imported when used

    paa = PiecewiseAggregateApproximation(window_size=None, output_size=size, overlapping=False).fit_transform(series.astype(np.float64))
    if scaling == "minmax":
        low, high = paa.min(axis=1, keepdims=True), paa.max(axis=1, keepdims=True)
        span = np.where(high > low, high - low, 1)
        return np.where(high > low, np.clip((paa - low) / span * 2 - 1, -1, 1), -1.0)
    if scaling == "standard":
        std = paa.std(axis=1, keepdims=True)
        return np.where(std > 0, (paa - paa.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1), 0.0)
    return paa


def simulated(series, size, method, scaling):
    values = reference_values(series, size, scaling)
    return np.array([[[circuit_expectation(a, b, SIGN[method]) for b in row] for a in row] for row in values])


@pytest.mark.parametrize("method", ["qgasf", "qgadf"])
@pytest.mark.parametrize("scaling", ["minmax", "standard", "none"])
@pytest.mark.parametrize("length,size,spread", [(100, 16, 1.0), (37, 7, 3.0), (64, 13, 0.3), (51, 51, 2.0)])
def test_images_equal_the_circuit_simulation(method, scaling, length, size, spread):
    series = (np.random.default_rng(length).normal(size=(6, length)) * spread).astype(np.float32)
    got = encode(series, size, method, qgaf={"scaling": scaling})
    assert got.dtype == np.float32 and got.shape == (6, size, size)
    assert np.abs(got - simulated(series, size, method, scaling)).max() < 1e-6


def test_wrapped_and_unwrapped_values_both_match():
    # |x_i ± x_j| < π/2 everywhere for the small series; far beyond it for the large one
    small = np.random.default_rng(1).uniform(-0.35, 0.35, size=(1, 40)).astype(np.float32)
    large = np.random.default_rng(2).uniform(-4, 4, size=(1, 40)).astype(np.float32)
    for series, wrapped in ((small, False), (large, True)):
        values = reference_values(series, 20, "none")[0]
        pairs = np.abs(values[:, None] + values[None, :])
        assert (pairs.max() > np.pi / 2) == wrapped
        for method in ("qgasf", "qgadf"):
            got = quantum_gaf(series, 20, method, scaling="none")
            assert np.abs(got - simulated(series, 20, method, "none")).max() < 1e-6
    # the difference field is symmetric, unlike the classical GADF
    image = quantum_gaf(large, 20, "qgadf", scaling="none")[0]
    assert np.array_equal(image, image.T) and np.allclose(np.diag(image), 1, atol=1e-6)


@pytest.mark.parametrize("method", ["qgasf", "qgadf"])
def test_a_constant_series_is_what_the_classical_gaf_makes_it(method):
    series = np.array([np.full(50, 3.7), np.zeros(50)], dtype=np.float32)
    got = quantum_gaf(series, 10, method)
    assert np.isfinite(got).all()
    # the classical GAF's constant series is -1 everywhere: GASF = 2·(-1)² - 1 = 1
    assert np.allclose(gramian_angular_field(series, 10, "gasf"), 1)
    expected = circuit_expectation(-1.0, -1.0, SIGN[method])
    assert np.abs(got - expected).max() < 1e-6
    assert np.abs(quantum_gaf(series, 10, method, scaling="standard") - 1).max() < 1e-6   # all 0
    unscaled = quantum_gaf(series, 10, method, scaling="none")
    assert abs(unscaled[0, 0, 0] - circuit_expectation(3.7, 3.7, SIGN[method])) < 1e-6


@pytest.mark.parametrize("method", ["qgasf", "qgadf"])
def test_shots_mean_and_variance_are_the_binomials(method):
    shots, rows = 40, 4000
    series = np.tile(np.random.default_rng(3).normal(size=(1, 30)).astype(np.float32), (rows, 1))
    exact = quantum_gaf(series[:1], 6, method)[0].astype(np.float64)
    noisy = quantum_gaf(series, 6, method, shots=shots, seed=5).astype(np.float64)
    # every pixel is 2k/N - 1 for a whole number of shots k
    k = (noisy + 1) * shots / 2
    assert np.abs(k - np.round(k)).max() < 1e-3
    p = (1 + exact) / 2
    variance = 4 * p * (1 - p) / shots
    mean_error = np.abs(noisy.mean(axis=0) - exact) / np.sqrt(np.maximum(variance, 1e-12) / rows)
    assert mean_error.max() < 5
    inner = (p > 0.05) & (p < 0.95)       # the variance of the variance is ~2σ⁴/(rows - 1) there
    ratio = noisy.var(axis=0, ddof=1)[inner] / variance[inner]
    assert inner.sum() > 5 and np.abs(ratio - 1).max() < 5 * np.sqrt(2 / rows) * 1.5
    # rows are independent: identical series, different draws
    assert not np.array_equal(noisy[0], noisy[1])


def test_shots_noise_depends_on_the_seed_and_the_row_only():
    series = np.random.default_rng(4).normal(size=(10, 30)).astype(np.float32)
    whole = quantum_gaf(series, 8, "qgasf", shots=100, seed=2)
    halves = np.concatenate([quantum_gaf(series[:4], 8, "qgasf", shots=100, seed=2),
                             quantum_gaf(series[4:], 8, "qgasf", shots=100, seed=2, first_row=4)])
    assert np.array_equal(whole, halves)
    assert not np.array_equal(whole, quantum_gaf(series, 8, "qgasf", shots=100, seed=3))
    assert not np.array_equal(whole, quantum_gaf(series, 8, "qgasf", shots=100, seed=2, first_row=1))


def test_a_shots_cache_is_the_same_twice_and_records_its_settings(tmp_path):
    demo_windows = basicmotions_fold(tmp_path)["windows"]
    qgaf = {"scaling": "minmax", "shots": 64, "seed": 7}
    build_images(demo_windows, tmp_path / "a.h5", "qgasf+qgadf", 16, chunk_windows=7, qgaf=qgaf, dtype="float32")
    build_images(demo_windows, tmp_path / "b.h5", "qgasf+qgadf", 16, chunk_windows=32, qgaf=qgaf, dtype="float32")
    windows = read_windows(demo_windows)
    fp = windows.attrs["fingerprint"]
    expected = {"method": "qgasf+qgadf", "size": 16, "qgaf": qgaf, "dtype": "float32"}
    a = read_images(tmp_path / "a.h5", fp, expected)
    assert np.array_equal(a, read_images(tmp_path / "b.h5", fp, expected))
    # each sensor channel's Q-GASF then Q-GADF; its rows keyed by window × channels + channel
    flat = windows.X.reshape(-1, 100)
    for e, method in enumerate(("qgasf", "qgadf")):
        alone = quantum_gaf(flat, 16, method, shots=64, seed=7)
        assert np.array_equal(a[:, e::2].reshape(-1, 16, 16), alone)
    with pytest.raises(InputError, match="qgaf_shots 64, expected 100"):
        read_images(tmp_path / "a.h5", fp, {**expected, "qgaf": {**qgaf, "shots": 100}})
    build_images(demo_windows, tmp_path / "exact.h5", "qgasf", 16, dtype="float32")
    with pytest.raises(InputError, match="qgaf_scaling minmax, expected none"):
        read_images(tmp_path / "exact.h5", fp, {"method": "qgasf", "size": 16, "dtype": "float32",
                                                "qgaf": {"scaling": "none"}})
    exact = read_images(tmp_path / "exact.h5", fp, {"method": "qgasf", "size": 16, "dtype": "float32",
                                                    "qgaf": {}})
    assert np.abs(exact.reshape(-1, 16, 16) - simulated(flat, 16, "qgasf", "minmax")).max() < 1e-6


def test_a_caches_name_says_its_qgaf_settings_and_builds_them_back():
    def config(method, **qgaf):
        return {"images": {"methods": [method], "size": 64, "pi": {"recipe": "lab"}, "dtype": "float16",
                           "qgaf": qgaf_settings(qgaf)}}

    cases = [("qgasf", {}, "qgasf64"), ("gasf", {"scaling": "none", "shots": 9}, "gasf64"),
             ("qgadf", {"scaling": "none"}, "qgadf64-unscaled"),
             ("qgasf+qgadf", {"scaling": "standard", "shots": 100}, "qgasf+qgadf64-standard-shots100"),
             ("qgasf", {"shots": 5, "seed": 3}, "qgasf64-shots5-seed3")]
    for method, qgaf, tag in cases:
        assert grid.image_tag(config(method, **qgaf), method) == tag
        variant = tag[len(method) + 2:]
        assert re.fullmatch(names.IMAGE_VARIANT_REGEX, variant)
        if method != "gasf":
            assert names.image_variant(variant)["qgaf"] == qgaf_settings(qgaf)
    # the seed changes nothing without shots, so it is not part of the exact cache's identity
    assert grid.image_settings(config("qgasf", seed=4), "qgasf")["qgaf"] == {"scaling": "minmax", "shots": None}
    assert "qgaf" not in grid.image_settings(config("gasf+mtf"), "gasf+mtf")


@pytest.mark.parametrize("qgaf,match", [
    ({"scaling": "log"}, r"images.qgaf.scaling: 'log' is not one of minmax, standard, none"),
    ({"shots": 0}, r"images.qgaf.shots: 0 must be null .* of at least 1"),
    ({"shots": 2.5}, r"images.qgaf.shots: 2.5 must be"),
    ({"seed": -1}, r"images.qgaf.seed: -1 must be a whole number of at least 0"),
    ({"shot": 3}, r"images.qgaf: unknown setting shot"),
])
def test_bad_settings_name_the_key_and_value(qgaf, match):
    with pytest.raises(ConfigError, match=match):
        qgaf_settings(qgaf)


@pytest.mark.parametrize("qgaf,message", [
    ({"scaling": "log"}, "images.qgaf.scaling: 'log' is not one of ['minmax', 'standard', 'none']"),
    ({"shots": 0}, "images.qgaf.shots: 0 is less than the minimum of 1"),
    ({"shots": "many"}, "images.qgaf.shots: 'many' is not of type 'integer', 'null'"),
])
def test_the_config_check_names_the_bad_key_and_value(qgaf, message):
    import yaml

    from gafkd.config import SCHEMA
    from gafkd.configfile import schema_errors
    from conftest import REPO

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["images"]["qgaf"] = qgaf
    assert schema_errors(config, SCHEMA) == message


def test_the_demo_config_is_the_experiments_grid_made_short():
    import yaml

    from gafkd.config import check_config_file
    from conftest import REPO

    experiment = yaml.safe_load((REPO / "configs/qgaf_vs_gaf.yaml").read_text())
    demo = check_config_file(REPO / "docs/qgaf_demo.yaml")
    assert demo["images"]["methods"] == experiment["images"]["methods"]
    assert demo["images"]["qgaf"] == qgaf_settings(experiment["images"]["qgaf"])
    assert demo["teachers"]["modalities"] == experiment["teachers"]["modalities"]
    assert demo["teachers"]["seeds"] == experiment["teachers"]["seeds"]
    for key in ("arch", "methods", "paired_images", "seeds"):
        assert demo["students"][key] == experiment["students"][key]
    assert experiment["students"]["kd"].items() <= demo["students"]["kd"].items()   # demo: defaults filled
    assert set(demo["students"]["alphas"]) <= set(experiment["students"]["alphas"])
    assert demo["training"]["epochs"] < experiment["training"]["epochs"]
