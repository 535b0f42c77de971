"""What every GPU job script starts with: its log and the device slot it claims
(gafkd.train.devices.job_device). The slots come from the config, not params: where a job runs
never reruns it; its torch threads (devices.threads) are in params, as they change the numbers."""
import gafkd_src  # noqa: F401  (must come first)
from contextlib import contextmanager

from gafkd.logs import logged
from gafkd.train.devices import job_device


@contextmanager
def gpu_job(smk):
    """The job's claim (its .device and .description), its log open, for the `snakemake` object
    of a script whose rule declares `gpu` (0 where --resources gpu=0 scaled the request down)."""
    with logged(smk.log[0]), job_device(smk.config, smk.threads, smk.resources.get("gpu")) as claim:
        yield claim
