"""Exact resume: everything a run needs to continue where it stopped (Progress), written after
every epoch and on SIGTERM as a solo run's resume checkpoint (a member's part of a pack), and read
back only when every member's file belongs to these settings and stopped at the same step;
anything else starts over, saying why."""

import copy
import logging
import signal
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from gafkd.atomic import atomic_path
from gafkd.errors import reason
from gafkd.train.checkpoint import load_checkpoint, save_checkpoint
from gafkd.train.packed import host_state

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Everything needed to continue a run exactly where it stopped."""
    epoch: int = 0
    batch: int = 0                      # batches already done in `epoch`
    epoch_generator_state: torch.Tensor | None = None
    loss_sum: float = 0.0
    correct: int = 0
    history: list = field(default_factory=list)
    best: dict | None = None            # epoch, val accuracy/loss, test metrics
    best_state: dict | None = None
    best_test: dict | None = None       # lab-style best epoch picked on the test set
    elapsed: float = 0.0


class StopFlag:
    """Set by SIGTERM; the loop checks it after every batch."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def save_resumes(runs, members, optimizer, generators, progress):
    """Each run's resume checkpoint, in a solo run's format (a member's part of a pack)."""
    for k, (run, generator, state) in enumerate(zip(runs, generators, progress)):
        # the best weights, kept on the device, go to the file as host copies (asdict would first
        # copy them on the device)
        saved = {**asdict(replace(state, best_state=None)),
                 "best_state": None if state.best_state is None else host_state(state.best_state)}
        with atomic_path(run.resume_path) as tmp:
            save_checkpoint({"run_key": run.run_key, "model": members.member_state(k),
                             "optimizer": members.member_optimizer_state(optimizer, k),
                             "generator": generator.get_state(), "progress": saved}, tmp)


def load_resumes(runs, members, optimizer, generators):
    """The runs' progress from their resume checkpoints, or None (and say why) to start over. A
    pack resumes only when every member has a usable checkpoint of the same step."""
    paths = [Path(run.resume_path) for run in runs]
    if not any(path.exists() for path in paths):
        return None
    states = []
    for run, path in zip(runs, paths):
        if not path.exists():
            log.warning("no resume checkpoint %s beside the pack's others: starting over", path)
            return None
        try:
            state = load_checkpoint(path, "resume checkpoint")
        except Exception as exc:  # a torn or foreign file must never stop a run
            log.warning("resume checkpoint %s is unreadable (%s): starting over", path, reason(exc))
            return None
        if state.get("run_key") != run.run_key:
            log.warning("resume checkpoint %s belongs to other settings: starting over", path)
            return None
        states.append(state)
    if len({(s["progress"]["epoch"], s["progress"]["batch"]) for s in states}) > 1:
        log.warning("the resume checkpoints %s stopped at different steps: starting over",
                    ", ".join(map(str, paths)))
        return None
    initial = [members.member_state(k) for k in range(len(runs))]
    initial_optimizer = copy.deepcopy(optimizer.state_dict())
    try:
        progress = [Progress(**state["progress"]) for state in states]
        for k, state in enumerate(states):
            members.load_member_state(k, state["model"])
        members.load_optimizer_states(optimizer, [state["optimizer"] for state in states])
        for generator, state in zip(generators, states):
            generator.set_state(state["generator"])
    except Exception as exc:  # starting over means from the initial weights
        for k, state in enumerate(initial):
            members.load_member_state(k, state)
        optimizer.load_state_dict(initial_optimizer)
        log.warning("resume checkpoint %s is unreadable (%s): starting over", paths[0], reason(exc))
        return None
    log.info("resuming from %s at epoch %d, batch %d", ", ".join(map(str, paths)),
             progress[0].epoch + 1, progress[0].batch)
    return progress
