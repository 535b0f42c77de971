"""The plan (gafkd.plan, gafkd.resources): the jobs a config expands to and what each asks its
scheduler for, as the rules declare it; the lab configs' cluster requests; the plan command."""
import collections
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO
from rawfiles import make_gene_folder
from test_workflow import dry_run_jobs, snakemake

from gafkd import grid
from gafkd import names
from gafkd import resources
from gafkd.config import check_config_file, fold_names
from gafkd.methods import method
from gafkd.train.models import build_model
from gafkd.plan import plan, report_name
from gafkd.distill.cache_layout import cache_bytes, choose_forms

SHIPPED = sorted((REPO / "configs").glob("*.yaml")) + [REPO / "config.yaml"]


def planned(config_path, name="x"):
    config = check_config_file(config_path)
    return config, plan(config, name)


def declared_by_dry_run(workdir, configfile):
    """{rule: Counter of (gpu, mem_mb, runtime)} of the jobs a dry run prints."""
    run = snakemake(workdir, "-n", configfile=configfile)
    assert run.returncode == 0, run.stderr[-3000:]
    declared = collections.defaultdict(collections.Counter)
    for rule, fields in dry_run_jobs(run.stdout):
        if rule in ("all", "report"):
            continue
        found = dict(item.split("=", 1) for item in fields["resources"])
        declared[rule][int(found["gpu"]), int(found["mem_mb"]), int(found["runtime"])] += 1
    return declared


def by_rule(jobs):
    counts = collections.defaultdict(collections.Counter)
    for job in jobs:
        counts[job.rule][job.needs.gpu, job.needs.mem_mb, job.needs.runtime] += 1
    return counts


@pytest.fixture
def gene_config(tmp_path):
    """A GENE grid on raw files with packs, SP students and a scratch student derived from a teacher."""
    raw = tmp_path / "raw" / "Window-size-50"
    make_gene_folder(raw)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {"gene": {"source": "geneactiv_mat", "raw": str(raw), "window": 50,
                                   "class_map": {1: "walk", 2: "rest", 3: "run"},
                                   "split": {"kind": "holdout", "val_fraction": 0.2, "test_fraction": 0.2}}}
    config["images"] = {"methods": ["gasf", "gadf"], "size": 16}
    config["students"]["pack"] = 4
    path = tmp_path / "gene.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("which", ["demo", "gene"])
def test_the_rules_declare_what_the_plan_says_for_every_job(tmp_path, gene_config, which):
    configfile = REPO / "config.yaml" if which == "demo" else gene_config
    declared = declared_by_dry_run(tmp_path, configfile)
    _, jobs = planned(configfile)
    assert declared == by_rule(jobs)
    assert any(rule.startswith("train_student_pack") for rule in declared)
    assert (0, resources.MEM_FLOOR_MB["cpu"], resources.RUNTIME_FLOOR["cpu"]) in declared["train_student"]


@pytest.mark.parametrize("name", ["gene14_w500", "pamap2_loso"])
def test_lab_grids_ask_a_cluster_for_what_their_jobs_need(name):
    config, jobs = planned(REPO / "configs" / f"{name}.yaml")
    folds = {dataset: fold_names(spec) for dataset, spec in config["datasets"].items()}
    derived = {names.STUDENT_RUN.format(**run) for run in grid.student_runs(config, folds)
               if grid.same_run_teacher_dir(config, run) is not None}
    network_rules = ("train_teacher", "teacher_outputs", "teacher_similarity", "train_student")
    for job in jobs:
        runs_a_network = job.family.startswith(network_rules) and job.name not in derived
        assert job.needs.gpu == int(runs_a_network), job
    packs = grid.student_packs(config, folds)
    plain = max(resources.student_needs(config, list(pack.runs)).mem_mb for pack in packs
                if not method(pack.runs[0]["method"]).similarity)
    sp_packs = [pack for pack in packs if method(pack.runs[0]["method"]).similarity]
    assert sp_packs
    for job in jobs:
        if job.family == "train_student_pack":
            assert job.needs.runtime > 60, job
    for pack in sp_packs:
        # the teachers' similarity caches (rows: the fold's training windows) come on top
        data = resources.fold_data(config, pack.runs[0]["dataset"])
        caches = 0
        for modality, arch in names.parse_teachers_tag(pack.runs[0]["method"], pack.runs[0]["teachers"]).values():
            channels, shape = resources._input_shape(config, data, modality)
            sizes = resources.network_cost(arch, channels, shape, data.classes).feature_sizes
            caches += cache_bytes(choose_forms(sizes, data.train), sizes, data.train)
        assert resources.student_needs(config, list(pack.runs)).mem_mb >= plain + caches / 1e6, pack.label


def test_a_pack_asks_for_more_as_it_widens_and_with_similarity():
    config = check_config_file(REPO / "configs" / "gene14_w500.yaml")
    folds = {dataset: fold_names(spec) for dataset, spec in config["datasets"].items()}
    packs = grid.student_packs(config, folds)
    plain = next(pack for pack in packs if not method(pack.runs[0]["method"]).similarity)
    sp = next(pack for pack in packs if method(pack.runs[0]["method"]).similarity)
    for pack in (plain, sp):
        widths = [resources.student_needs(config, list(pack.runs[:k])) for k in (2, 8, len(pack.runs))]
        assert [n.runtime for n in widths] == sorted(n.runtime for n in widths)
        assert widths[0].runtime < widths[-1].runtime
        assert [n.mem_mb for n in widths] == sorted(n.mem_mb for n in widths)
    same_width = resources.student_needs(config, list(plain.runs[:len(sp.runs)]))
    with_sp = resources.student_needs(config, list(sp.runs))
    assert with_sp.mem_mb > same_width.mem_mb and with_sp.runtime >= same_width.runtime


def test_a_gpu_model_is_asked_for_by_every_gpu_job_and_no_other(tmp_path, gene_config):
    """cluster.gpu_model: each GPU job declares Snakemake's gpu_model resource, which the SLURM
    executor sends as --gpus=<model>:1; a job that takes no GPU asks for no model."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    config = yaml.safe_load(gene_config.read_text())
    config["cluster"] = {"gpu_model": "a100"}
    gene_config.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", configfile=gene_config)
    assert run.returncode == 0, run.stderr[-3000:]
    models = collections.Counter()
    for rule, fields in dry_run_jobs(run.stdout):
        if rule in ("all", "report"):
            continue
        found = dict(item.split("=", 1) for item in fields["resources"])
        model = found.get("gpu_model", "")
        assert model == ("a100" if found["gpu"] == "1" else ""), (rule, found)
        job = collections.namedtuple("Job", "resources")(DotDict(
            {key: int(value) if value.isdigit() else value for key, value in found.items()}))
        assert set_gres_string(job).strip() == ("--gpus=a100:1" if model else ""), rule
        models[model] += 1
    assert models["a100"] and models[""]        # GPU jobs, and CPU jobs (windows, images, a derived scratch)
    assert "gpu: 1 of model a100 (sbatch --gpus=a100:1)" in subprocess.run(
        [sys.executable, "-m", "gafkd.plan", "--configfile", str(gene_config)], capture_output=True, text=True,
        cwd=tmp_path).stdout


class DotDict(dict):
    """A job's resources as the executor reads them: job.resources.get(...) and job.resources.gres."""
    __getattr__ = dict.get


def test_a_gpu_model_that_sbatch_could_not_take_is_a_config_error(tmp_path):
    from gafkd.errors import ConfigError

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["cluster"] = {"gpu_model": "a100:2"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="cluster.gpu_model"):
        check_config_file(path)


def test_runtime_factor_scales_every_runtime_above_its_floor():
    config = check_config_file(REPO / "configs" / "gene14_w500.yaml")
    slow = {**config, "cluster": {"runtime_factor": 3}}
    for fast_job, slow_job in zip(plan(config, "x"), plan(slow, "x")):
        assert slow_job.needs.mem_mb == fast_job.needs.mem_mb
        floor = resources.RUNTIME_FLOOR["gpu" if fast_job.needs.gpu else "cpu"]
        if fast_job.needs.runtime > floor:
            assert slow_job.needs.runtime >= 3 * fast_job.needs.runtime - 3, fast_job


def test_counted_flops_equal_the_convolutions_and_linear_layer_of_a_real_forward():
    """The meta-device count against the multiply-adds of each layer of a CPU forward."""
    for arch, channels, shape in [("wrn16-1", 3, (50,)), ("wrn16-2", 4, (16, 16))]:
        model = build_model(arch, channels, 5, len(shape)).eval()
        macs = []

        def count(module, inputs, output):
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
                kernel = torch.tensor(module.kernel_size).prod().item()
                macs.append(output.numel() * module.in_channels // module.groups * kernel)
            elif isinstance(module, torch.nn.Linear):
                macs.append(output.numel() * module.in_features)

        hooks = [m.register_forward_hook(count) for m in model.modules()]
        with torch.no_grad():
            model(torch.randn(1, channels, *shape))
        for hook in hooks:
            hook.remove()
        cost = resources.network_cost(arch, channels, shape, 5)
        assert cost.flops == 2 * sum(macs)
        assert cost.parameters == sum(p.numel() for p in model.parameters())


def test_the_window_count_comes_from_the_raw_files_then_windows_h5(tmp_path, monkeypatch, gene_config):
    monkeypatch.chdir(tmp_path)
    config = check_config_file(gene_config)
    spec = config["datasets"]["gene"]
    assert resources.window_count(spec, "gene") == (len(list((tmp_path / "raw").rglob("*.mat"))), 0)
    lab = dict(spec, raw=str(tmp_path / "absent"))
    assert resources.window_count(lab, "gene")[0] == int(resources.GENE_SAMPLES_PER_CHANNEL // 50)
    run = snakemake(tmp_path, "results/gene/windows.h5", configfile=gene_config)
    assert run.returncode == 0, run.stderr[-2000:]
    import h5py
    with h5py.File(tmp_path / "results/gene/windows.h5") as f:
        built = f["X"].shape[0]
    assert resources.window_count(lab, "gene") == (built, 0)
    data = resources.fold_data(config, "gene")
    assert data.windows == built and (data.channels, data.length, data.classes) == (3, 50, 3)


def test_report_name_is_the_config_files_unless_named():
    assert report_name({"report": {}}, ["configs/pamap2_loso.yaml"]) == "pamap2_loso"
    assert report_name({"report": {}}, ["base.yaml", "more/gene.yaml"]) == "gene"
    assert report_name({"report": {"name": "mine"}}, ["configs/pamap2_loso.yaml"]) == "mine"


@pytest.mark.parametrize("configfile", SHIPPED, ids=lambda p: p.name)
def test_the_plan_command_prints_every_shipped_config(configfile):
    run = subprocess.run([sys.executable, "-m", "gafkd.plan", "--configfile", str(configfile)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    config, jobs = planned(configfile, report_name(check_config_file(configfile), [configfile]))
    total = next(line for line in run.stdout.splitlines() if line.startswith("total"))
    gpu_hours = sum(job.needs.runtime * job.needs.gpu for job in jobs) / 60
    assert total.split()[1:3] == [str(len(jobs)), f"{gpu_hours:.1f}"]
    assert f"results/reports/{report_name(config, [configfile])}/" in run.stdout


def test_the_plan_command_gives_the_checkers_message_for_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config.yaml").read_text().replace("epochs: 40", "epochs: -1"))
    run = subprocess.run([sys.executable, "-m", "gafkd.plan", "--configfile", str(bad)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1
    assert "training.epochs" in run.stderr and str(bad) in run.stderr
    assert "Traceback" not in run.stderr


def test_the_workflow_sizes_its_jobs_without_importing_torch():
    """What the Snakefile imports while it parses, and every job's resources from the plan, leave
    torch unimported: every snakemake command, and every cluster job, parses the workflow."""
    script = ("import sys; from gafkd import config, grid, names, runfiles, resources, plan, archs, methods; "
              "from gafkd.data import rawfolder, splits, download; "
              "from gafkd.config import check_config_file; "
              f"[plan.plan(check_config_file(p), 'x') for p in {[str(p) for p in SHIPPED]!r}]; "
              "print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "False"
