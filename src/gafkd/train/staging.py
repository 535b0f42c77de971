"""Batches gathered on the host and sent to a CUDA device through small reused pinned buffers.

An asynchronous host-to-device copy needs page-locked (pinned) source memory. Pinning whole
splits or caches costs host memory (torch's pinned allocator rounds each allocation up to a
power of two: a 5.06 GB split pins 8.59 GB) and buys nothing when every batch is gathered into a
new, pageable tensor anyway. So the big arrays stay in ordinary memory and each batch is
gathered straight into one of two pinned buffers (`out=`), copied asynchronously, and that
buffer is reused only once its copy has finished: the next batch is gathered while the last one
is copied.
"""

import math

import torch


class PinnedStaging:
    """Send host batches of one dtype to `device` through `count` reused pinned buffers.

    Buffer i is filled on calls i, i + count, ...; its event is recorded after each copy out of
    it and waited on before it is filled again, so a buffer is rewritten only once its own last
    copy has finished (with two buffers, the copy of the batch before last). The copies are
    issued on the device's current stream, the stream of the work that reads the batches."""

    def __init__(self, device, dtype, count=2):
        self.device, self.dtype = torch.device(device), dtype
        self.buffers = [None] * count
        # blocking: synchronize() sleeps until the copy is done instead of spinning a CPU core
        self.copied = [torch.cuda.Event(blocking=True) for _ in range(count)]
        self.turn = 0

    def send(self, shape, fill):
        """`fill(out)` writes a batch of `shape` into the host tensor `out`; returns the batch on
        the device (its copy ordered before later work on the device's current stream)."""
        turn = self.turn
        self.turn = (turn + 1) % len(self.buffers)
        self.copied[turn].synchronize()              # the last copy out of this buffer is done
        size = math.prod(shape)
        if self.buffers[turn] is None or self.buffers[turn].numel() < size:
            self.buffers[turn] = torch.empty(size, dtype=self.dtype, pin_memory=True)
        out = self.buffers[turn][:size].view(shape)
        fill(out)
        batch = out.to(self.device, non_blocking=True)
        # on the stream the copy ran on: that of the destination device, which need not be
        # the process's current device
        self.copied[turn].record(torch.cuda.current_stream(self.device))
        return batch


def gather_rows(source, host_index, device, staging=None):
    """source[host_index] on `device`: through `staging` (a PinnedStaging) to a CUDA device, a plain
    gather on the CPU (the same numbers)."""
    if staging is None:
        return torch.index_select(source, 0, host_index).to(device)
    return staging.send((len(host_index),) + tuple(source.shape[1:]),
                        lambda out: torch.index_select(source, 0, host_index, out=out))
