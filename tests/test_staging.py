"""Host batches staged through reused pinned buffers (gafkd.staging), with torch.cuda's events and
pinned allocations faked so that the logic runs without a GPU."""
import torch

from gafkd import staging
from gafkd.staging import PinnedStaging, gather_rows


class FakeEvent:
    log = []

    def __init__(self):
        self.name = f"event{len(FakeEvent.made)}"
        FakeEvent.made.append(self)

    def record(self):
        FakeEvent.log.append(("record", self.name))

    def synchronize(self):
        FakeEvent.log.append(("synchronize", self.name))


def fake_cuda(monkeypatch):
    """Events that log their calls; pinned allocations logged and served from ordinary memory."""
    FakeEvent.made, FakeEvent.log = [], []
    pinned = []
    real_empty = torch.empty

    def empty(*size, pin_memory=False, **kwargs):
        tensor = real_empty(*size, **kwargs)
        if pin_memory:
            pinned.append(tensor)
        return tensor

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(staging.torch, "empty", empty)
    return pinned


def test_batches_are_gathered_into_two_reused_pinned_buffers(monkeypatch):
    pinned = fake_cuda(monkeypatch)
    source = torch.randn(100, 3, 8)
    stage = PinnedStaging("cpu", source.dtype)
    batches = [torch.randperm(100)[:16] for _ in range(5)] + [torch.arange(7)]     # a short last batch
    for index in batches:
        sent = gather_rows(source, index, "cpu", stage)
        assert torch.equal(sent, source[index])
    assert len(pinned) == 2                                   # allocated once each, then reused
    assert {p.numel() for p in pinned} == {16 * 3 * 8}
    # a buffer is written again only after the copy out of it has finished
    assert FakeEvent.log[:6] == [("synchronize", "event0"), ("record", "event0"),
                                 ("synchronize", "event1"), ("record", "event1"),
                                 ("synchronize", "event0"), ("record", "event0")]


def test_a_larger_batch_grows_its_buffer(monkeypatch):
    pinned = fake_cuda(monkeypatch)
    source = torch.randn(50, 4)
    stage = PinnedStaging("cpu", source.dtype, count=1)
    assert torch.equal(gather_rows(source, torch.arange(3), "cpu", stage), source[:3])
    assert torch.equal(gather_rows(source, torch.arange(10, 40), "cpu", stage), source[10:40])
    assert [p.numel() for p in pinned] == [12, 120]


def test_without_staging_rows_are_a_plain_gather():
    source = torch.randn(20, 2)
    index = torch.tensor([3, 1, 4, 1])
    assert torch.equal(gather_rows(source, index, "cpu"), source[index])
