"""The demo pipeline submitted through profiles/slurm to a real single-node SLURM with two fake
GPUs and two partitions (`cpu`, `gpu`, as profiles/slurm/partitions.yaml names them). The grid is
cut down (GASF images only, two teacher seeds, one student seed and α, 3 epochs) to keep the
suite short; every rule of the pipeline still runs as a SLURM job, packs and an SP student
included, and each job's partition, GPUs, memory and time limit are checked against the plan."""
import collections
import itertools
import json
import os
import re
import subprocess
from datetime import datetime

import pytest
import yaml
from conftest import REPO
from slurm_cluster import Unavailable, held_partition, single_node_slurm
from test_workflow import scheduled_jobs, snakemake, snakemake_command

from gafkd.config import check_config_file
from gafkd.plan import plan, report_dir


def cluster_profile(folder):
    """profiles/slurm as shipped (its partitions file included), with this test cluster's status
    command and no account."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert "set-resources" not in profile and "default-resources" not in profile  # the plan's
    profile["slurm-partition-config"] = str(REPO / profile["slurm-partition-config"])
    profile.update({
        "slurm-status-command": "squeue",          # no accounting database here
        "slurm-no-account": True,
        "slurm-keep-successful-logs": True,
        "slurm-init-seconds-before-status-checks": 1,
        "seconds-between-status-checks": 2,
        "latency-wait": 5,
        "retries": 0,
        "keep-going": False,
    })
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def small_demo_config(path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"]["epochs"] = 3        # the jobs' placement is checked here, not learning
    config["images"]["methods"] = ["gasf"]
    config["students"]["paired_images"] = ["gasf"]
    config["teachers"]["seeds"] = [1, 2]
    config["students"].update(alphas=[0.5], seeds=[1], teacher_seed=1)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    try:
        folder = tmp_path_factory.mktemp("slurm")
        with single_node_slurm(folder / "cluster", gpus=2) as env:
            workdir = folder / "work"
            workdir.mkdir()
            configfile = small_demo_config(folder / "config.yaml")
            planned = scheduled_jobs(workdir, configfile=configfile)
            profile = cluster_profile(folder / "profile")
            # the first GPU jobs are held until two of them are queued, so that at least two
            # start together whatever the machine's speed: the device check below needs them
            with held_partition(env, "gpu", until_pending=2):
                run = subprocess.run(snakemake_command(workdir, "--profile", str(profile),
                                                       configfile=configfile),
                                     capture_output=True, text=True, env=env, timeout=900)
            assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
            log = run.stdout + run.stderr
            submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", log)
            granted = {job: scontrol_job(job, env) for job, _ in submitted}
            yield {"workdir": workdir, "configfile": configfile, "planned": planned, "log": log,
                   "submitted": submitted, "granted": granted}
    except Unavailable as reason:
        print(f"SLURM cluster test skipped: {reason}")
        pytest.skip(str(reason))


def scontrol_job(job_id, env):
    """{key: value} of `scontrol show job` (finished jobs stay listed for the cluster's MinJobAge)."""
    run = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    return dict(item.split("=", 1) for item in run.stdout.split() if "=" in item)


def minutes(time_limit):
    """SLURM's [days-]hours:minutes:seconds as minutes."""
    days, _, clock = time_limit.rpartition("-")
    hours, mins, _ = (int(part) for part in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + mins


def training_runs(workdir):
    return sorted((workdir / "results").rglob("metrics.json"))


def test_each_job_got_what_the_plan_asks_for(cluster_run):
    """Per rule, the requests SLURM granted equal the plan's (gafkd.plan): GPU jobs in the gpu
    partition with one GPU, every other job (the derived scratch student too) in cpu without."""
    previous = os.getcwd()
    os.chdir(cluster_run["workdir"])            # the plan counts the windows the jobs read
    try:
        config = check_config_file(cluster_run["configfile"])
        expected = collections.defaultdict(collections.Counter)
        for job in plan(config, "test"):
            expected[job.rule][("gpu" if job.needs.gpu else "cpu", job.needs.gpu, job.needs.mem_mb,
                                job.needs.runtime)] += 1
    finally:
        os.chdir(previous)
    granted = collections.defaultdict(collections.Counter)
    for job, rule in cluster_run["submitted"]:
        fields = cluster_run["granted"][job]
        gpus = 1 if re.search(r"gpu[:=]1\b", fields.get("TresPerJob", "")) else 0
        granted[rule][(fields["Partition"], gpus, int(fields["MinMemoryNode"].rstrip("M")),
                       minutes(fields["TimeLimit"]))] += 1
    assert granted == expected
    # the scratch student copied from its teacher's run: the one student job without a GPU
    assert [key[0] for key in granted["train_student"].elements()].count("cpu") == 1


def test_every_job_ran_as_a_slurm_job(cluster_run):
    planned = cluster_run["planned"]
    # the GASF teachers alone, the signal teachers' 2 seeds in one pack; the scratch student
    # derived from its teacher's run, kd-gaf, kd-sig and kd2 in one pack, kd2-anneal and
    # kd2-anneal-sp alone: packs are SLURM jobs like any other, with the GPU their rule asks for
    assert planned["train_teacher"] == 2 and planned["train_teacher_pack0"] == 1
    assert planned["train_student"] == 3 and planned["train_student_pack0"] == 1
    submitted = cluster_run["submitted"]
    job_ids = {job for job, _ in submitted}
    assert len(job_ids) == len(submitted)
    assert collections.Counter(rule for _, rule in submitted) == planned
    logs = cluster_run["workdir"] / "results/slurm_logs"
    for rule, count in planned.items():
        assert len(list((logs / f"rule_{rule}").rglob("*.log"))) == count, rule
    for path in training_runs(cluster_run["workdir"]):
        scheduler = json.loads(path.read_text())["provenance"]["scheduler"]
        assert scheduler["SLURM_JOB_ID"] in job_ids, path


def test_all_outputs_are_complete(cluster_run):
    workdir = cluster_run["workdir"]
    assert len(training_runs(workdir)) == 4 + 6
    config = yaml.safe_load(cluster_run["configfile"].read_text())
    assert (workdir / report_dir(config["report"]["name"]) / "tables.md").exists()
    again = snakemake(workdir, "-n", configfile=cluster_run["configfile"])
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout


def test_concurrent_gpu_jobs_saw_distinct_devices(cluster_run):
    """Jobs that SLURM ran at the same time (its own start and end times) saw different GPUs;
    a pack's members share their job's device."""
    device_of_job = {}
    derived = 0
    for path in training_runs(cluster_run["workdir"]):
        metrics = json.loads(path.read_text())
        if "reused_from" in metrics:    # a scratch student derived from its teacher's run: no GPU job
            derived += 1
            continue
        scheduler = metrics["provenance"]["scheduler"]
        visible = scheduler["CUDA_VISIBLE_DEVICES"]
        assert visible in ("0", "1"), (path, visible)
        assert device_of_job.setdefault(scheduler["SLURM_JOB_ID"], visible) == visible, path
    assert derived == 1              # the scratch student of seed 1 is the signal teacher of seed 1
    ran = {job: (datetime.fromisoformat(cluster_run["granted"][job]["StartTime"]),
                 datetime.fromisoformat(cluster_run["granted"][job]["EndTime"]))
           for job in device_of_job}
    overlapping = [(a, b) for a, b in itertools.combinations(sorted(ran), 2)
                   if ran[a][0] < ran[b][1] and ran[b][0] < ran[a][1]]
    assert overlapping, "no two GPU jobs ran at the same time; the check would prove nothing"
    for a, b in overlapping:
        assert device_of_job[a] != device_of_job[b], \
            f"SLURM jobs {a} and {b} ran at the same time on CUDA_VISIBLE_DEVICES={device_of_job[a]}"
