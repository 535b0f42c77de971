"""`make gpu-check` (benchmarks/gpu_check.py) runs its checks on the CPU where there is no GPU,
so that it cannot rot between the runs on a GPU machine."""
import csv
import subprocess
import sys
import tarfile

from conftest import REPO

CHECKS = ["environment", "workflow", "workflow devices", "workflow slots", "workflow job time",
          "determinism teacher", "resume teacher", "determinism student", "resume student",
          "placement teacher", "placement student", "determinism teacher fp32", "determinism student fp32",
          "pack K=1", "pack K=8", "total"]


def test_gpu_check_runs_every_check_on_the_cpu(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                          "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "work"),
                          "--precisions", "tf32", "fp32"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "out" / "gpu_check.csv")))
    checks = [r for r in rows if r["check"] != "workflow job"]
    assert [r["check"] for r in checks] == CHECKS
    assert {r["check"]: r["result"] for r in checks if r["result"] != "info"} == dict.fromkeys(
        ["workflow", "workflow devices", "workflow slots", "determinism teacher", "resume teacher",
         "determinism student", "resume student", "placement teacher", "placement student",
         "determinism teacher fp32", "determinism student fp32"], "pass")
    jobs = [r for r in rows if r["check"] == "workflow job"]
    # 2 teachers and 8 trained students (the scratch student is the signal teacher's run) in 3
    # packs: kd-gaf, kd-sig and kd2 (α 0.1 and 0.5) in one, kd2-anneal's and kd2-anneal-sp's 2 each
    assert len(jobs) == 10 and {r["device"] for r in jobs} == {"cpu"}
    assert len({(r["slot"], r["started_at"]) for r in jobs}) == 2 + 3
    assert all(float(r["wall_seconds"]) > 0 for r in jobs)
    assert "| determinism student | cpu | pass | 0 | the pack of 2 runs" in (tmp_path / "out" / "gpu_check.md").read_text()
    log = (tmp_path / "work" / "snakemake.log").read_text()
    assert log.count("GPU job(s) will run on the CPU") == 1          # said once, before the jobs
    assert "resume.pt True" in run.stdout
    with tarfile.open(tmp_path / "out" / "gpu_check_logs.tar.gz") as tar:
        assert "snakemake.log" in tar.getnames()
