"""A real single-node SLURM for tests: munged, slurmctld and slurmd started from a generated
slurm.conf/gres.conf in a temporary folder, with fake GPUs, and stopped by PID. The node is in
two partitions, `cpu` (the default) and `gpu`, as a site's CPU and GPU partitions.

The GPUs are character devices (`mknod PATH c 1 3`, the harmless /dev/null device) listed in
gres.conf with `Flags=nvidia_gpu_env`: SLURM then gives each `--gpus=1` job its own
CUDA_VISIBLE_DEVICES, as on a GPU node. There is no accounting database, so job status comes
from `squeue` (MinJobAge keeps finished jobs visible long enough).

    python tests/slurm_cluster.py FOLDER     # start one by hand; Ctrl-C stops it
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

# Snakemake's job step (srun inside each job) drops SLURM_* variables, SLURM_CONF included, so
# srun finds the config only at the default path: the cluster links it there while it runs.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ("slurmctld", "slurmd", "munge", "slurm-client")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")


class Unavailable(Exception):
    """SLURM cannot be run here (not root, or the packages cannot be installed)."""


def _have_daemons():
    return all(shutil.which(name) or Path("/usr/sbin", name).exists() for name in DAEMONS)


def ensure_installed():
    """Install SLURM and munge with apt-get when they are missing; Unavailable says why not."""
    if _have_daemons():
        return
    if os.geteuid() != 0:
        raise Unavailable("SLURM is not installed and installing it needs root")
    if not shutil.which("apt-get"):
        raise Unavailable("SLURM is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        run = subprocess.run(command, capture_output=True, text=True, env=env)
        if run.returncode != 0:
            raise Unavailable(f"{' '.join(command)} failed: {run.stderr.strip()[-500:]}")
    if not _have_daemons():
        raise Unavailable(f"{', '.join(PACKAGES)} installed but {', '.join(DAEMONS)} not all found")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise Unavailable("cannot read MemTotal from /proc/meminfo")


def write_config(folder, cpus, gpus, memory_mb):
    """slurm.conf, gres.conf, a munge key and `gpus` fake GPU devices under `folder`."""
    folder = Path(folder)
    for sub in ("state", "spool", "log", "dev"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    for index in range(gpus):
        device = folder / "dev" / f"nvidia{index}"
        if not device.exists():
            os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    (folder / "slurm.conf").write_text(f"""\
ClusterName=gafkdtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=7200
SchedulerParameters=sched_interval=1
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{gpus} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
""")
    (folder / "gres.conf").write_text(
        f"NodeName={host} Name=gpu File={folder}/dev/nvidia[0-{gpus - 1}] Flags=nvidia_gpu_env\n")
    return folder / "slurm.conf"


def set_partition_state(env, partition, state):
    """`scontrol update` a partition: DOWN queues its jobs without starting them, UP starts them."""
    run = subprocess.run(["scontrol", "update", f"PartitionName={partition}", f"State={state}"],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"scontrol could not set partition {partition} {state}: {run.stderr.strip()}")


def pending_jobs(env, partition):
    run = subprocess.run(["squeue", "-h", "-t", "PD", "-p", partition, "-o", "%i"],
                         env=env, capture_output=True, text=True)
    return run.stdout.split() if run.returncode == 0 else []


@contextlib.contextmanager
def held_partition(env, partition, until_pending, settle=3.0, timeout=600.0):
    """Keep `partition` DOWN until `until_pending` of its jobs wait in the queue (or `timeout`
    passes), wait `settle` seconds more for jobs submitted in the same round, then set it UP: the
    jobs held start in one scheduling pass, so they run at the same time."""
    set_partition_state(env, partition, "DOWN")
    released = threading.Event()

    def release():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not released.is_set():
            if len(pending_jobs(env, partition)) >= until_pending:
                released.wait(settle)
                break
            time.sleep(0.5)
        set_partition_state(env, partition, "UP")

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        released.set()
        thread.join()


def _wait_until(condition, seconds, what, logs):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    raise RuntimeError(f"{what} did not happen within {seconds} s\n{tails}")


def _die_with_parent():
    """Runs in each daemon before exec: the kernel stops it if this process dies unexpectedly."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _stop(processes):
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def single_node_slurm(folder, cpus=None, gpus=2):
    """Start munged, slurmctld and slurmd; yield the environment that points clients at them.

    The node declares `cpus` CPUs (by default the machine's, and at least 4, whatever its
    hardware: `config_overrides`), so that jobs can run side by side on a small machine.

    Every daemon runs in the foreground as a child of this process and is stopped by its PID
    when the block exits, however it exits.
    """
    ensure_installed()
    if os.geteuid() != 0:
        raise Unavailable("the test cluster runs its daemons as root")
    folder = Path(folder)
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        raise Unavailable(f"{DEFAULT_CONF} exists: this machine has its own SLURM, which the test "
                          "cluster will not replace")
    conf = write_config(folder, cpus or max(4, os.cpu_count()), gpus, max(1024, _memory_mb() - 2048))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    log_dir = folder / "log"
    processes = []
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.symlink_to(conf)
    try:
        processes.append(subprocess.Popen(
            ["munged", "--foreground", "--force", f"--key-file={folder}/munge.key",
             f"--socket={folder}/munge.socket", f"--pid-file={folder}/munged.pid",
             f"--seed-file={folder}/munge.seed", f"--log-file={log_dir}/munged.log"],
            stdout=subprocess.DEVNULL, stderr=open(log_dir / "munged.err", "w"),
            preexec_fn=_die_with_parent))
        _wait_until(lambda: (folder / "munge.socket").exists(), 20, "munged socket",
                    [log_dir / "munged.log", log_dir / "munged.err"])
        for daemon in ("slurmctld", "slurmd"):
            processes.append(subprocess.Popen(
                [daemon, "-D", "-f", str(conf)] + (["-i"] if daemon == "slurmctld" else []),
                env=env, stdout=subprocess.DEVNULL, stderr=open(log_dir / f"{daemon}.err", "w"),
                preexec_fn=_die_with_parent))

        def node_idle():
            run = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            return run.returncode == 0 and set(run.stdout.split()) == {"idle"}

        _wait_until(node_idle, 60, "the node becoming idle",
                    [log_dir / n for n in ("slurmctld.log", "slurmd.log", "slurmctld.err", "slurmd.err")])
        yield env
    finally:
        _stop(processes)
        if DEFAULT_CONF.is_symlink() and DEFAULT_CONF.readlink() == conf:
            DEFAULT_CONF.unlink()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with single_node_slurm(Path(sys.argv[1]).resolve()) as cluster_env:
        print(f"export SLURM_CONF={cluster_env['SLURM_CONF']}   # Ctrl-C stops the cluster")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
