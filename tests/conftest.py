import hashlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).parent))


def tree_digest(root):
    """{relative path: sha256} of every file under root."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def demo_config_with(path, **students):
    """The demo config with `students` keys replaced, written to `path`; returns the path."""
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["students"].update(students)
    path.write_text(yaml.safe_dump(config))
    return path


def basicmotions_fold(root, images_size=None):
    """BasicMotions' windows.h5 under root (the published split; validation windows drawn at random
    from the 40 training recordings, so training windows are not the first rows) and, with
    `images_size`, its GASF image cache: {'root', 'windows'[, 'images']}."""
    from gafkd.data.windows import build_windows

    split = {"kind": "predefined", "val_fraction": 0.25, "seed": 0}
    build_windows("basicmotions", {"source": "basicmotions", "split": split},
                  root / "windows.h5", root / "summary.md")
    files = {"root": root, "windows": root / "windows.h5"}
    if images_size:
        from gafkd.images.cache import build_images

        build_images(root / "windows.h5", root / "images.h5", size=images_size)
        files["images"] = root / "images.h5"
    return files


@pytest.fixture
def gene_folder(tmp_path):
    from rawfiles import make_gene_folder
    folder = tmp_path / "Window-size-50"
    return folder, make_gene_folder(folder)


def narrowing_packs_to(width, widths):
    """A stand-in for gafkd.train.memory.pack_width_that_fits that lets packs train at most
    `width` wide, recording in `widths` the width of each pack it is asked about."""
    def pack_width_that_fits(model, *args, **kwargs):
        widths.append(getattr(model, "members", 1))
        return min(width, widths[-1])
    return pack_width_that_fits


class ReplayedStep:
    """A CPU stand-in for gafkd.train.graphs.CudaGraph: like a CUDA graph, it runs nothing at
    capture and the captured step at each replay."""

    made = []

    def __init__(self, pool):
        self.step, self.replays = None, 0
        ReplayedStep.made.append(self)

    def capture(self, step):
        self.step = step

    def replay(self):
        self.replays += 1
        self.step()


@pytest.fixture
def stand_in_graphs(monkeypatch):
    """Graphs on the CPU: the stand-in for every capture, and no reason not to graph; the list of
    the stand-ins made."""
    from gafkd.train import graphs

    ReplayedStep.made = []
    monkeypatch.setattr(graphs, "new_graph", ReplayedStep)
    monkeypatch.setattr(graphs, "why_not_graphed", lambda device, data, loss_fn: None)
    return ReplayedStep.made


@pytest.fixture
def pamap2_folder(tmp_path):
    from rawfiles import make_pamap2_folder
    folder = tmp_path / "Protocol"
    return folder, make_pamap2_folder(folder)


# `make test-fast` runs the tests without these markers (pytest -m "not slow and not slurm and
# not gpu"); `make test` runs everything. A test is `slow` when it runs the workflow or another
# process (Snakemake, a job script, a benchmark), imports pyts' numba-compiled modules to compare
# against them (each process compiles them, uncached: tens of seconds), or uses a fixture that
# does; `slurm` when it needs the test cluster; `gpu` when it measures a GPU path. Marked by rule,
# so that a new test of the same kind is marked too; @pytest.mark.slow marks a slow test of
# another kind by hand.
SLOW_CALLS = ("snakemake(", "snakemake_with(", "scheduled_jobs(", "snakemake_command(", "subprocess.",
              "Process(", "declared_by_dry_run(", "run_with_report(", "import pyts.image",
              "from pyts.image", "from pyts.approximation", "from pyts.preprocessing")


def _source(function):
    import inspect
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def _process_helpers(module):
    """Names of the module's functions (and those it imports from test helpers) that call one of
    SLOW_CALLS, so that a test calling them is slow too."""
    import inspect
    names = set()
    for name, value in vars(module).items():
        if inspect.isfunction(value) and not name.startswith("test_"):
            if any(call in _source(value) for call in SLOW_CALLS):
                names.add(name)
    return names


def _runs_a_process(item, helpers):
    """Whether the test, or a fixture it uses, calls one of SLOW_CALLS or a helper that does."""
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for definitions in (info.name2fixturedefs.values() if info else ()):
        functions += [definition.func for definition in definitions]
    calls = SLOW_CALLS + tuple(f"{name}(" for name in helpers)
    return any(call in _source(function) for function in functions for call in calls)


def pytest_collection_modifyitems(config, items):
    helpers = {}
    for item in items:
        if item.module not in helpers:
            helpers[item.module] = _process_helpers(item.module)
        if item.module.__name__ == "test_cluster":
            item.add_marker(pytest.mark.slurm)
        if "gpu" in item.module.__name__:
            item.add_marker(pytest.mark.gpu)
        if _runs_a_process(item, helpers[item.module]):
            item.add_marker(pytest.mark.slow)
