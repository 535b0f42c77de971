"""Memory on the host and the device: what is free, what a job used at its peak, and where the
splits of a training run live (on the device, or in host memory from which batches stream).

torch is imported only inside the functions that need CUDA, so that a job that only asks about
host memory starts quickly.
"""

import contextlib
import logging
import os
import resource
import sys

from gafkd.errors import ConfigError

log = logging.getLogger(__name__)

# Where the tensors of a split live. `device`: resident on the training device, batches are
# gathered there. `host`: in host memory, each batch is gathered on the host into a small pinned
# buffer and copied to the device asynchronously (gafkd.train.staging). On the CPU the two hold the same numbers.
DEVICE, HOST, AUTO = "device", "host", "auto"
PLACEMENTS = (AUTO, DEVICE, HOST)
PLACEMENT_ENV = "GAFKD_DATA_PLACEMENT"      # forces auto|device|host for every job

# Device memory kept free beside the data for what training allocates: gradients and momentum
# (RESERVE_PER_PARAMETER_BYTE x the model's weights), the activations of a training batch and of
# an evaluation batch (activation_bytes; RESERVE_ACTIVATION_BYTES when the model is not known)
# and RESERVE_SLACK_BYTES for convolution workspaces and the allocator's fragmentation.
RESERVE_ACTIVATION_BYTES = 2 * 2**30
RESERVE_SLACK_BYTES = 2**29
RESERVE_PER_PARAMETER_BYTE = 3
TRAIN_LARGEST, EVAL_LARGEST = 3, 5       # activation_bytes: the largest activations alive at once


def _device_type(device):
    return device.type if hasattr(device, "type") else str(device).split(":")[0]


def _proc_bytes(path, key):
    """The `key:` line of a /proc file (in kB) as bytes; None where the file or line is missing."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def host_available_bytes():
    """Memory the host can still give without swapping: MemAvailable of /proc/meminfo, else
    psutil's `available`, else free pages x page size."""
    available = _proc_bytes("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# What a process's CUDA context takes on its device, roughly (driver, kernels): memory outside
# torch's allocator, so neither memory_reserved nor a job's reserve counts it.
CUDA_CONTEXT_BYTES = 2**29

# Jobs that may run on this process's CUDA device at once (devices.jobs_per_gpu): a job plans
# with its share of the card, not with what happens to be free when it starts. Set by
# gafkd.train.devices for the lifetime of a job's claim.
_jobs_on_device = 1


@contextlib.contextmanager
def jobs_sharing_device(jobs):
    """Within the block, device_budget_bytes plans with 1/`jobs` of a CUDA card."""
    global _jobs_on_device
    previous, _jobs_on_device = _jobs_on_device, max(1, int(jobs))
    try:
        yield
    finally:
        _jobs_on_device = previous


def device_share_bytes(total, jobs):
    """A job's share of a card of `total` bytes that `jobs` jobs share: total / jobs, less its
    process's CUDA context."""
    return max(0, int(total) // max(1, int(jobs)) - CUDA_CONTEXT_BYTES)


def device_budget_bytes(device):
    """Device memory this job may still fill: on CUDA its share of the card (device_share_bytes of
    the card's total memory and the jobs sharing it) less what this process's allocator already
    holds, and at most the card's free memory; the host's available memory for the CPU.

    The share depends on the card and the number of jobs only, so jobs that start together plan
    the same whatever the others have allocated at that moment. Free memory is smaller than the
    share only when the card holds more than the other jobs' shares (another program, a job over
    its share): the share is not there then, and planning with it would fail at the first copy."""
    if _device_type(device) == "cuda":
        import torch
        free, total = (int(n) for n in torch.cuda.mem_get_info(device))
        share = device_share_bytes(total, _jobs_on_device) - int(torch.cuda.memory_reserved(device))
        return max(0, min(free, share))
    return host_available_bytes()


def jobs_on_device():
    """The jobs this process's device is shared by (jobs_sharing_device)."""
    return _jobs_on_device


def human_bytes(n):
    """`n` bytes in decimal units with two decimals: 6.50 GB, 512.00 kB, 12 B."""
    if n is None:
        return "n/a"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def host_peak_bytes():
    """Peak resident memory of this process: VmHWM of /proc/self/status where there is one (the
    high-water mark of this program alone), else ru_maxrss of getrusage (KiB on Linux, bytes on
    macOS), which on Linux also counts the parent's memory at the fork that started the process
    (a job started by a large Snakemake process would report Snakemake's size)."""
    peak = _proc_bytes("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def reset_host_peak():
    """Start the host's peak-memory count afresh from the current resident size (Linux: writes
    5 to /proc/self/clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def reset_device_peak(device):
    """Start the device's peak-memory count afresh (CUDA only; the host's peak cannot be reset)."""
    if _device_type(device) == "cuda":
        import torch
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device):
    """{'host_peak_bytes': the process's peak RSS (host_peak_bytes), 'device_peak_bytes': the peak
    of tensors allocated on the CUDA device since the last reset, 'device_reserved_peak_bytes':
    the peak the caching allocator held (what the card must give the job, less the CUDA context);
    both None on the CPU}."""
    allocated = reserved = None
    if _device_type(device) == "cuda":
        import torch
        allocated = int(torch.cuda.max_memory_allocated(device))
        reserved = int(torch.cuda.max_memory_reserved(device))
    return {"host_peak_bytes": host_peak_bytes(), "device_peak_bytes": allocated,
            "device_reserved_peak_bytes": reserved}


def activation_bytes(model, input_shape, batch_size, eval_batch_size=512, fusion=None):
    """Estimated activation memory of `model` on inputs of `input_shape` (one window, without the
    batch dimension), in float32: the larger of a training step (the tensors autograd saves in
    the forward of `batch_size` windows, plus backward's gradients: three of the largest
    activation) and an evaluation batch (five of the largest activations of `eval_batch_size`
    windows alive at once: a residual block's input, its activated input, two intermediates and
    its output). Activations grow linearly with the batch: forwards of one and of two windows through
    a copy of the model on the CPU give the part that grows and the part that does not; the
    model itself, its statistics and the random state are untouched. `fusion`: the way a pack
    (gafkd.train.packed) computes on the device it will train on, which the CPU copy then computes
    too (gemm saves each convolution's unfolded input)."""
    import copy

    import torch
    probe = copy.deepcopy(model).cpu().float().train()
    if fusion is not None:
        probe.fusion = fusion

    def forward(windows):
        saved, largest = {}, [0]

        def pack(tensor):
            storage = tensor.untyped_storage()
            saved[storage.data_ptr(), storage.nbytes()] = storage.nbytes()
            return tensor

        def track(module, inputs, output):
            for out in output if isinstance(output, (tuple, list)) else (output,):
                if isinstance(out, torch.Tensor):
                    largest[0] = max(largest[0], out.nbytes)

        hooks = [module.register_forward_hook(track) for module in probe.modules()]
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                probe(torch.zeros((windows,) + tuple(input_shape)))
        finally:
            for hook in hooks:
                hook.remove()
        return sum(saved.values()), largest[0]

    (saved_1, largest_1), (saved_2, largest_2) = forward(1), forward(2)
    per_window, fixed = saved_2 - saved_1, 2 * saved_1 - saved_2
    largest = max(largest_2 - largest_1, 0)                      # per window
    training = fixed + batch_size * (per_window + TRAIN_LARGEST * largest)
    return int(max(training, EVAL_LARGEST * eval_batch_size * largest))


def reserve_bytes(parameter_bytes=0, activations=None):
    """Device memory to leave free beside the data for a model of `parameter_bytes` weights whose
    activations take `activations` bytes (activation_bytes; RESERVE_ACTIVATION_BYTES if None)."""
    activations = RESERVE_ACTIVATION_BYTES if activations is None else activations
    return int(activations + RESERVE_SLACK_BYTES + RESERVE_PER_PARAMETER_BYTE * parameter_bytes)


def training_reserve(model, members, input_shape, batch_size, device, eval_batch_size=512):
    """Device memory a training job keeps free beside its data, with which every placement of
    the job plans (its splits, similarity caches, online teachers' images): the weights and the
    activations of `model` measured on inputs of `input_shape` (one member's, without the batch
    dimension; a pack of `members` takes their inputs side by side and evaluates
    eval_batch_size / members windows each), never less than the default reserve. On the CPU
    nothing is placed: the default, without measuring."""
    if _device_type(device) == "cpu":
        return reserve_bytes()
    channels, *rest = input_shape
    fusion = model.device_fusion(device) if members > 1 else None
    measured = reserve_bytes(sum(p.numel() * p.element_size() for p in model.parameters()),
                             activation_bytes(model, (channels * members, *rest), batch_size,
                                              max(1, eval_batch_size // members), fusion))
    return max(reserve_bytes(), measured)


def requested_placement(placement=None):
    """`placement` if given, else $GAFKD_DATA_PLACEMENT, else auto; checked."""
    value = placement if placement is not None else os.environ.get(PLACEMENT_ENV, AUTO)
    value = str(value).strip().lower()
    if value not in PLACEMENTS:
        raise ConfigError(f"unknown data placement '{value}' (known: {', '.join(PLACEMENTS)})")
    return value


def fits_on_device(nbytes, device, reserve, what="data"):
    """Whether `nbytes` more of the job's data stay resident on `device` (always on the CPU):
    as plan_placement places a split after those already on the device, with the job's training
    `reserve` kept free; $GAFKD_DATA_PLACEMENT forces either."""
    if _device_type(device) == "cpu":
        return True
    return plan_placement({what: nbytes}, device_budget_bytes(device), reserve,
                          requested_placement())[what] == DEVICE


def plan_placement(split_bytes, free_bytes, reserve, placement=AUTO):
    """Where each split lives: {name: 'device'|'host'} for `split_bytes` {name: nbytes}, taken in
    order (the training split first): with `auto`, a split stays on the device when it fits in
    what is left of `free_bytes` after `reserve` and the splits placed before it."""
    if placement in (DEVICE, HOST):
        return {name: placement for name in split_bytes}
    budget = free_bytes - reserve
    plan = {}
    for name, nbytes in split_bytes.items():
        if nbytes <= budget:
            plan[name] = DEVICE
            budget -= nbytes
        else:
            plan[name] = HOST
    return plan


def pack_width_that_fits(model, reserve, input_shape, batch_size, device, eval_batch_size=512, budget=None):
    """How many members of `model` (a gafkd.train.packed pack, or a solo network: 1) train at
    once on `device`: all of them when the pack's training `reserve` fits in the job's device
    memory (`budget`, default device_budget_bytes; its data then fit beside it or stream from
    the host), else the widest narrower pack whose own training_reserve fits, by bisection (a
    reserve grows with the width), and 1 when none does. On the CPU all of them: nothing is
    placed there."""
    members = getattr(model, "members", 1)
    if members == 1 or _device_type(device) == "cpu":
        return members
    budget = device_budget_bytes(device) if budget is None else budget
    if reserve <= budget:
        return members

    def fits(width):
        narrower = type(model)(model.arch, model.in_channels, model.num_classes, model.dims, width, model.fusion)
        narrower.group_outputs = model.group_outputs
        return training_reserve(narrower, width, input_shape, batch_size, device, eval_batch_size) <= budget

    low, high = 1, members - 1
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def train_in_narrower_packs(runs, width, reserve, device, train):
    """`train(pack)` for consecutive packs of at most `width` (pack_width_that_fits) of `runs`, one
    after another, saying why; each starts with this process's cached device memory released,
    which device_budget_bytes would otherwise count as the job's. Returns the runs' metrics."""
    log.warning("a pack of %d keeps %s free for training on %s, more than the %s this job may fill (its "
                "share of the card with devices.jobs_per_gpu: %d): its runs train in packs of %d, one after "
                "another", len(runs), human_bytes(reserve), device, human_bytes(device_budget_bytes(device)),
                jobs_on_device(), width)
    metrics = []
    for start in range(0, len(runs), width):
        _release_cached_device_memory(device)
        metrics += train(runs[start:start + width])
    return metrics


def _release_cached_device_memory(device):
    if _device_type(device) == "cuda":
        import gc
        import torch
        gc.collect()
        torch.cuda.empty_cache()
