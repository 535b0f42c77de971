"""Jobs run the library of the checkout they were started from, and record its commit, whatever
gafkd the Python environment has installed; the README's command lines run as typed."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from rawfiles import make_gene_folder, make_pamap2_folder
from test_configs import checkout_copy

TEACHER = "results/basicmotions/predefined/teachers/sig/wrn16-1/seed1"
TEACHER_LOG = "results/basicmotions/logs/teachers/predefined/sig-wrn16-1-seed1.log"
GIT = ["git", "-c", "user.name=gafkd test", "-c", "user.email=test@gafkd.invalid", "-c", "commit.gpgsign=false"]


def git(root, *args):
    return subprocess.run([*GIT, "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    """Two checkouts of this working tree; the second has one more commit that changes a log line."""
    root = tmp_path_factory.mktemp("clones")
    first = checkout_copy(root / "first")
    shutil.copytree(REPO / "envs", first / "envs")    # what a job's metadata records
    shutil.copy(REPO / ".gitignore", first)
    git(first, "init", "--quiet")
    git(first, "add", "-A")
    git(first, "commit", "--quiet", "-m", "this working tree")
    second = root / "second"
    subprocess.run(["git", "clone", "--quiet", str(first), str(second)], check=True)
    teachers = second / "src/gafkd/distill/teachers.py"
    text = teachers.read_text()
    assert 'log.info("%s teacher %s on' in text
    teachers.write_text(text.replace('log.info("%s teacher %s on', 'log.info("second clone: %s teacher %s on'))
    git(second, "commit", "--quiet", "-am", "a changed log line")
    return first, second


def tiny_config(root):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"] = {"epochs": 1, "batch_size": 8}
    config["teachers"] = {"modalities": ["sig"], "archs": ["wrn16-1"], "seeds": [1]}
    config["students"] = {"methods": ["kd-sig"], "seeds": [1]}
    config["devices"] = {"threads": 1, "lock_dir": str(root / "locks")}
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("other_first_on_path", [False, True], ids=["editable-install", "pythonpath"])
def test_each_checkout_runs_and_records_its_own_code(clones, other_first_on_path):
    """The venv's editable install points at REPO; with PYTHONPATH, REPO/src even comes first."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if other_first_on_path:
        env["PYTHONPATH"] = str(REPO / "src")
    for clone in clones:
        tiny_config(clone)
        run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--forceall",
                              f"{TEACHER}/metrics.json", "--configfile", "tiny.yaml"],
                             cwd=clone, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        log = (clone / TEACHER_LOG).read_text()
        assert ("second clone: sig teacher" in log) == (clone.name == "second"), log
        provenance = json.loads((clone / TEACHER / "metrics.json").read_text())["provenance"]
        commit = git(clone, "rev-parse", "--short=12", "HEAD")
        assert provenance["code_version"] == f"0.1.0+{commit}", (clone.name, provenance["code_version"])
    first, second = clones
    assert git(first, "rev-parse", "HEAD") != git(second, "rev-parse", "HEAD")


def test_gafkd_imported_from_elsewhere_is_replaced(clones):
    first, _ = clones
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); import gafkd.grid; "
            f"sys.path += [{str(first / 'src')!r}, {str(first / 'workflow/scripts')!r}]; "
            "import gafkd_src, gafkd.grid; print(gafkd.__file__); print(gafkd.grid.__file__)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(first / "src/gafkd/__init__.py"), str(first / "src/gafkd/grid.py")]


def test_dirty_checkout_says_so(clones, tmp_path):
    first, _ = clones
    code = f"import sys; sys.path.insert(0, {str(first / 'src')!r}); from gafkd.provenance import code_version; print(code_version())"
    commit = git(first, "rev-parse", "--short=12", "HEAD")
    clean = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert clean.stdout.strip() == f"0.1.0+{commit}"
    grid = first / "src/gafkd/grid.py"
    original = grid.read_text()
    grid.write_text(original + "\n")
    try:
        dirty = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    finally:
        grid.write_text(original)
    assert dirty.stdout.strip() == f"0.1.0+{commit}-dirty"


def readme_commands():
    """The snakemake command lines of the README's code blocks (the report and the cluster left out)."""
    blocks = re.findall(r"^```(?:bash|sh)?\n(.*?)^```", (REPO / "README.md").read_text(), re.MULTILINE | re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    commands = [line for line in lines if re.match(r"(\.venv/bin/)?snakemake\s", line)]
    return [c for c in commands if "--report" not in c and "--profile profiles/slurm" not in c]


def test_readme_lists_its_commands():
    commands = readme_commands()
    assert len(commands) >= 5
    assert any("--configfile" in c and "windows" in c for c in commands)


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_dry_runs_from_the_repository_root(line, tmp_path):
    root = checkout_copy(tmp_path / "gafkd")
    argv = shlex.split(line, comments=True)
    if "--configfile" in argv:
        config = yaml.safe_load((root / argv[argv.index("--configfile") + 1]).read_text())
        assert argv[argv.index("--configfile") + 2:] == [], "targets go before --configfile"
        for spec in config["datasets"].values():     # fixture raw files where the config says
            if spec["source"] == "geneactiv_mat":
                make_gene_folder(root / spec["raw"], window=spec["window"], subjects=(1, 2, 3),
                                 classes=tuple(spec["class_map"]), per_class=1)
            else:
                make_pamap2_folder(root / spec["raw"])
        datasets = set(config["datasets"])
    else:
        datasets = {"basicmotions"}
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", *argv[1:]], cwd=root,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    scheduled = set(re.findall(r"^\s+output: results/([^/]+)/", run.stdout, re.MULTILINE)) - {"report", "reports"}
    assert scheduled == datasets, scheduled
