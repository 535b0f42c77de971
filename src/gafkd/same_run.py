"""Whether a scratch student run is the signal teacher run of its architecture under another name
(torch-free: the grid and the workflow decide it before any job runs).

A `scratch` student (a 1-D network on the windows, cross-entropy only) and the signal teacher
of the same architecture are built, seeded, fed and trained by the same code: with the same
dataset, fold, seed, training settings and torch threads they are one run, identical in every
number. same_run_teacher compares the settings that change a result (the params of the two
rules) field by field, and only ever names a teacher that the configured teacher grid trains
anyway; gafkd.distill.reuse derives the student's files from that teacher's.
"""

import json

# The settings a scratch student and a signal teacher must share, and what each adds to them.
SHARED = ("dataset", "fold", "arch", "seed", "training", "threads")
SCRATCH = {"method": "scratch", "teachers": "none", "alpha": 0.0}
SIGNAL_TEACHER = {"modality": "sig"}
# A signal teacher trained in a pack (teachers.pack) records it: the run is still the one run of
# its seed, computed beside others, and the student derived from it carries the record along.
TEACHER_OPTIONAL = ("pack",)

WHY = ("a scratch student is the signal teacher of its architecture run under another name: the "
       "same windows, fold, 1-D network, seed, initial weights, cross-entropy loss, training "
       "settings and torch threads, so the same weights and numbers")


def _same(a, b):
    """Equal as JSON (1 and 1.0, or 0 and false, are different settings here)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def differences(student, teacher):
    """Why `student` (settings of a student run) and `teacher` (of a teacher run) are not the same
    run: a list of reasons, empty when they are."""
    wrong = []
    if set(student) != set(SHARED) | set(SCRATCH):
        extra = sorted(set(student) - set(SHARED) - set(SCRATCH))
        missing = sorted(set(SHARED) - set(student))
        wrong.append(f"student settings {', '.join(extra + missing)} "
                     f"{'beyond' if extra else 'missing from'} a scratch run's")
    for key, value in SCRATCH.items():
        if not _same(student.get(key), value):
            wrong.append(f"student {key} {student.get(key)!r}, not {value!r}")
    if set(teacher) - set(TEACHER_OPTIONAL) != set(SHARED) | set(SIGNAL_TEACHER):
        extra = sorted((set(teacher) - set(TEACHER_OPTIONAL)) ^ (set(SHARED) | set(SIGNAL_TEACHER)))
        wrong.append(f"teacher settings {', '.join(extra)} differ from a signal teacher's")
    for key, value in SIGNAL_TEACHER.items():
        if not _same(teacher.get(key), value):
            wrong.append(f"teacher {key} {teacher.get(key)!r}, not {value!r}")
    for key in SHARED:
        if key not in student or key not in teacher or not _same(student[key], teacher[key]):
            wrong.append(f"{key}: student {student.get(key)!r}, teacher {teacher.get(key)!r}")
    return wrong


def same_run(student, teacher):
    """Whether the student run of settings `student` is the teacher run of settings `teacher`."""
    return not differences(student, teacher)


def same_run_teacher(student, teachers, teacher_settings):
    """The settings of the teacher run that is the same run as the student of settings `student`,
    or None.

    `teachers`: the config's teacher grid (modalities, archs, seeds): only a teacher it trains
    anyway is named, so reusing never adds a run. `teacher_settings(dataset, fold, modality,
    arch, seed)`: the settings a teacher run of the grid is trained with (the teacher rule's).
    """
    if not same_run(student, {**{k: student.get(k) for k in SHARED}, **SIGNAL_TEACHER}):
        return None
    arch, seed = student["arch"], student["seed"]
    if ("sig" not in teachers["modalities"] or arch not in teachers["archs"]
            or not any(_same(seed, s) for s in teachers["seeds"])):
        return None
    teacher = teacher_settings(student["dataset"], student["fold"], "sig", arch, seed)
    return teacher if same_run(student, teacher) else None
