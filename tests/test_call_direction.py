"""One student run, followed call by call: control goes down the stages (distill -> train ->
data), and comes back up only where the design hands it a callback. The import test
(test_import_cycles.py) sees imports; this one sees calls, callbacks included."""
import sys

import torch
from conftest import basicmotions_fold

from gafkd.config import training_defaults
from gafkd.distill.students import train_student
from gafkd.distill.teacher_outputs import write_teacher_outputs
from gafkd.distill.teachers import train_teacher

STAGES = ("data", "images", "train", "distill", "report")
CPU = torch.device("cpu")
TRAINING = {**training_defaults(), "epochs": 1, "batch_size": 16}
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "beta": 700.0, "sp_merge": "raw",
      "sp_source": "cache", "standardize_logits": False}


def floor(module):
    """The stage of a gafkd module (0 data ... 4 report), None for shared and other modules."""
    parts = (module or "").split(".")
    return STAGES.index(parts[1]) if parts[0] == "gafkd" and len(parts) > 2 and parts[1] in STAGES else None


def qualified_name(frame):
    """'Class.method' or 'function' of a frame's code (co_qualname from Python 3.11; before it,
    the class of `self`)."""
    code = frame.f_code
    if hasattr(code, "co_qualname"):
        return code.co_qualname
    owner = frame.f_locals.get("self")
    return code.co_name if owner is None else f"{type(owner).__name__}.{code.co_name}"


def upward_calls(run):
    """{(caller, callee)} of the calls from a lower stage into a higher one while `run()` runs,
    each as module:function."""
    found = set()

    def profile(frame, event, arg):
        if event != "call" or frame.f_back is None:
            return
        callee, caller = frame.f_globals.get("__name__"), frame.f_back.f_globals.get("__name__")
        low, high = floor(caller), floor(callee)
        if low is not None and high is not None and low < high:
            found.add((f"{caller}:{frame.f_back.f_code.co_name}", f"{callee}:{qualified_name(frame)}"))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return found


def test_the_floor_of_a_module():
    assert floor("gafkd.data.readers.pamap2") == 0 and floor("gafkd.distill.students") == 3
    assert floor("gafkd.grid") is None and floor("torch.nn") is None


def test_a_student_run_climbs_back_only_through_its_loss(tmp_path):
    files = basicmotions_fold(tmp_path)
    teacher = tmp_path / "sig1"
    teacher.mkdir()
    outputs = {k: teacher / k for k in ("model", "metrics", "history")}
    train_teacher(files["windows"], None, {"dataset": "basicmotions", "fold": "predefined", "modality": "sig",
                                           "arch": "wrn10-1", "seed": 1, "training": TRAINING},
                  outputs, teacher / "resume.pt", CPU)
    write_teacher_outputs(outputs["model"], files["windows"], None, teacher / "outputs.h5", CPU)
    student = tmp_path / "student"
    student.mkdir()
    settings = {"dataset": "basicmotions", "fold": "predefined", "arch": "wrn10-1", "method": "kd-sig",
                "teachers": "sig-wrn10-1", "alpha": 0.0, "seed": 1, "teacher_seed": 1, "kd": KD,
                "training": TRAINING}
    found = upward_calls(lambda: train_student(
        files["windows"], settings, {"sig": teacher / "outputs.h5"},
        {k: student / k for k in ("model", "metrics", "history")}, student / "resume.pt", CPU))
    assert (student / "metrics").exists()
    # the engine calls the loss it was handed, once per step: the one way back up (an empty set
    # would mean the tracer saw nothing)
    assert {callee for _, callee in found} == {"gafkd.distill.students:DistillationLoss.__call__"}, found
