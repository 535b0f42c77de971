"""CUDA graphs for the training step (training.cuda_graphs).

A step of a small 1-D network, or of a pack of them, is hundreds of short kernels, each launched
from Python. A CUDA graph records the step's kernels once and replays them with one launch.

A replay reads fixed addresses and repeats fixed arguments, so:
- the batch's window index is copied into a static buffer before each replay, and the step's
  losses and correct counts are copied into static outputs inside the graph; everything else a
  step reads (weights, momentum buffers, BatchNorm statistics, the resident split, cached teacher
  logits and similarity maps) is updated in place or constant;
- the learning rate is a Python float in SGD's update, so the step is captured again whenever the
  rate changes (the lab's schedule has four);
- a step whose batch the CPU gathers (a split or similarity cache streamed from host memory) is
  never graphed (why_not_graphed): a replay would send the same pinned buffer every time.

The first WARMUP_STEPS full steps of each process run eagerly on a side stream, as capture needs
(cuBLAS and cuDNN handles, SGD's momentum buffers); a batch of another shape (the last, short
one) runs eagerly. A replay launches the kernels the eager step launches, in the same order on
the same data, so a graphed run is bit-identical to an ungraphed one; benchmarks/gpu_check.py
checks that on a device.
"""

import logging

import torch

from gafkd.errors import GafkdError
from gafkd.train.memory import HOST

WARMUP_STEPS = 3

log = logging.getLogger(__name__)


class GraphCaptureError(GafkdError):
    """The training step cannot be captured as a CUDA graph."""


def why_not_graphed(device, data, loss_fn):
    """None when a training step on `device` can be captured; else why it cannot."""
    if device.type != "cuda":
        return f"the job runs on {device.type}, and CUDA graphs need a CUDA device"
    if data.train.placement == HOST:
        return "the training windows stream from host memory"
    if not getattr(loss_fn, "resident", True):
        return "the similarity maps stream from host memory"
    return None


def graphed_if_possible(step, optimizer, shape, device, data, loss_fn):
    """GraphedSteps replaying `step` when it can be captured, else `step` itself (logged either way)."""
    reason = why_not_graphed(device, data, loss_fn)
    if reason is not None:
        log.info("training.cuda_graphs: not used, %s", reason)
        return step
    log.info("training.cuda_graphs: the training step is replayed from a CUDA graph")
    return GraphedSteps(step, optimizer, shape, device)


def record(stepper, device, data, loss_fn):
    """What a run's metrics.json says of its graphs: how many captures and replays, or why none."""
    if isinstance(stepper, GraphedSteps):
        return {"used": True, "captures": stepper.captures, "replayed_steps": stepper.replays}
    return {"used": False, "why_not": why_not_graphed(device, data, loss_fn)}


class CudaGraph:
    """One captured step (torch.cuda.CUDAGraph) in the memory pool its recaptures share."""

    def __init__(self, pool):
        self.graph, self.pool = torch.cuda.CUDAGraph(), pool

    def capture(self, step):
        with torch.cuda.graph(self.graph, pool=self.pool):
            step()

    def replay(self):
        self.graph.replay()


new_graph = CudaGraph           # what GraphedSteps captures with (the CPU tests put a stand-in here)


class GraphedSteps:
    """The training step `step(index, host_index) -> (losses, correct)` of a job whose full batches
    have index shape `shape` (members, batch), replayed from a CUDA graph after the warmup steps;
    captured again when the optimizer's learning rate changes."""

    def __init__(self, step, optimizer, shape, device):
        self.step, self.optimizer, self.device = step, optimizer, device
        self.index = torch.zeros(shape, dtype=torch.long, device=device)
        self.losses = torch.zeros(shape[0], dtype=torch.float32, device=device)
        self.correct = torch.zeros(shape[0], dtype=torch.long, device=device)
        self.pool = torch.cuda.graph_pool_handle() if device.type == "cuda" else None
        self.graph, self.lr = None, None
        self.warmup_steps = self.replays = self.captures = 0

    def __call__(self, index, host_index):
        if index.shape != self.index.shape:
            return self.step(index, host_index)
        if self.warmup_steps < WARMUP_STEPS:
            self.warmup_steps += 1
            return self._on_side_stream(lambda: self.step(index, host_index))
        lr = [group["lr"] for group in self.optimizer.param_groups]
        if self.graph is None or lr != self.lr:
            self._capture()
            self.lr = lr
        self.index.copy_(index)
        self.graph.replay()
        self.replays += 1
        return self.losses, self.correct

    def _captured_step(self):
        losses, correct = self.step(self.index, None)
        self.losses.copy_(losses)
        self.correct.copy_(correct)

    def _capture(self):
        self.graph = None                           # its memory goes back to the shared pool
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients it writes
        graph = new_graph(self.pool)
        try:
            graph.capture(self._captured_step)
        except RuntimeError as error:
            raise GraphCaptureError(f"the training step could not be captured as a CUDA graph ({error}); "
                                    f"training.cuda_graphs: false trains without graphs") from error
        self.graph = graph
        self.captures += 1

    def _on_side_stream(self, run):
        if self.device.type != "cuda":
            return run()
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            out = run()
        current.wait_stream(side)
        return out
