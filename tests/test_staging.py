"""Host batches staged through reused pinned buffers (gafkd.train.staging), with torch.cuda's events and
pinned allocations faked so that the logic runs without a GPU."""
import torch

from gafkd.train import staging
from gafkd.train.staging import PinnedStaging, gather_rows


class FakeEvent:
    log = []

    def __init__(self, blocking=False):
        self.name, self.blocking = f"event{len(FakeEvent.made)}", blocking
        FakeEvent.made.append(self)

    def record(self, stream=None):
        FakeEvent.log.append(("record", self.name))
        FakeEvent.streams.append(stream)

    def synchronize(self):
        FakeEvent.log.append(("synchronize", self.name))


def fake_cuda(monkeypatch):
    """Events that log their calls; pinned allocations logged and served from ordinary memory."""
    FakeEvent.made, FakeEvent.log, FakeEvent.streams = [], [], []
    pinned = []
    real_empty = torch.empty

    def empty(*size, pin_memory=False, **kwargs):
        tensor = real_empty(*size, **kwargs)
        if pin_memory:
            pinned.append(tensor)
        return tensor

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: ("stream of", device))
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


class FakeBuffer:
    """A pinned host buffer whose fills and copies to the device are logged."""

    def __init__(self, size, log):
        self.size, self.log, self.name = size, log, f"buffer{len(FakeEvent.made)}.{len(log)}"

    def numel(self):
        return self.size

    def __getitem__(self, rows):
        return self

    def view(self, shape):
        return self

    def to(self, device, non_blocking=False):
        self.log.append(("copy", self.name, device, non_blocking))
        return f"batch from {self.name}"


def test_a_buffer_is_refilled_only_after_its_own_last_copy_finished(monkeypatch):
    fake_cuda(monkeypatch)
    log = FakeEvent.log
    monkeypatch.setattr(staging.torch, "empty", lambda size, **kwargs: FakeBuffer(size, log))
    for count in (1, 2, 3):
        FakeEvent.made.clear()
        FakeEvent.streams.clear()
        log.clear()
        stage = PinnedStaging("cpu", torch.float32, count=count)
        assert len(FakeEvent.made) == count and all(e.blocking for e in FakeEvent.made)   # no spin
        for step in range(7):
            stage.send((4 - step % 2, 3), lambda out: log.append(("fill", out.name)))
        event_of, in_flight = {}, set()         # buffer -> event recorded after its copy
        for i, entry in enumerate(log):
            if entry[0] == "fill":
                assert event_of.get(entry[1]) not in in_flight, f"{entry[1]} refilled mid-copy"
                if entry[1] in event_of:      # waited on its own copy only, not on the latest
                    assert log[i - 1] == ("synchronize", event_of[entry[1]])
            elif entry[0] == "copy":
                assert entry[2:] == (torch.device("cpu"), True)
                assert log[i + 1][0] == "record"                      # right after the copy
                event_of[entry[1]] = log[i + 1][1]
                in_flight.add(log[i + 1][1])
            elif entry[0] == "synchronize":
                in_flight.discard(entry[1])
        assert len(event_of) < 7                                      # buffers were refilled
        assert sum(entry[0] == "copy" for entry in log) == 7
        assert FakeEvent.streams == [("stream of", torch.device("cpu"))] * 7


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
