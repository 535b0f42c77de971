"""The student methods, one record each (torch-free: the workflow reads it).

Every place that needs to know what a method is reads this table: the workflow (a run's inputs
and settings), the students (the loss and the initial weights), the report (table rows and
their order), the figures, the benchmarks and the config schema's test. A new method is one
record here plus, if it needs one, its loss term in gafkd.distill.students.DistillationLoss.
"""

from dataclasses import dataclass

from gafkd.encodings import encoding_label
from gafkd.errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    teachers: tuple          # modalities of the teachers it learns from, in ('gaf', 'sig') order
    alpha: float | None      # its fixed α, or None: one run per α of students.alphas
    starts_from: str | None  # the method whose run of the same seed gives the initial weights
    similarity: bool         # + β · similarity-preserving KD on the teachers' group outputs
    label: str               # its row in the result tables and figures

    @property
    def alpha_grid(self):
        return self.alpha is None


# In the order of the result tables' rows (after the teachers').
METHODS = (
    Method("scratch", (), 0.0, None, False, "student from scratch"),
    Method("kd-gaf", ("gaf",), 1.0, None, False, "1 teacher (image)"),
    Method("kd-sig", ("sig",), 0.0, None, False, "1 teacher (signal)"),
    Method("kd2", ("gaf", "sig"), None, None, False, "2 teachers"),
    Method("kd2-anneal", ("gaf", "sig"), None, "scratch", False, "+ annealing"),
    Method("kd2-anneal-sp", ("gaf", "sig"), None, "scratch", True, "+ SP"),
)
NAMES = tuple(m.name for m in METHODS)
# The teachers' rows of the result tables, before the students': {row: teacher modality}.
TEACHER_ROWS = {"teacher-gaf": "gaf", "teacher-sig": "sig"}   # an image teacher (any encoding), the signal teacher
_BY_NAME = {m.name: m for m in METHODS}


def method(name):
    """The record of the method called `name`."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown student method '{name}' (known: {', '.join(NAMES)})") from None


def student_label(name, encoding=""):
    """A student's row in the tables: its method's label, with its image teacher's encoding
    where it has one: '1 teacher (GASF)', '2 teachers (PI + signal)', '+ SP (MTF + signal)'."""
    record = method(name)
    if not encoding or "gaf" not in record.teachers:
        return record.label
    image = encoding_label(encoding)
    return f"1 teacher ({image})" if len(record.teachers) == 1 else f"{record.label} ({image} + signal)"


def names(where):
    """The names of the methods for which `where(record)` holds, in table order."""
    return tuple(m.name for m in METHODS if where(m))


def alpha_tag(alpha):
    """α as result folders spell it: the shortest decimal that reads back as the same float,
    never in exponent form (0.1, 0.5, 1, 0.00001, 0.5000001)."""
    import numpy as np

    return np.format_float_positional(float(alpha), trim="-")


def pack_group(run):
    """The name of the runs student `run` may train with in one pack (with the same dataset,
    fold and student architecture): runs that start alike and read alike. Distillation from
    cached teacher logits packs across methods, teachers and α (`<arch>-kd`; `<arch>-kd-from-scratch`
    for the runs that start from the scratch student); an SP run packs within its grid cell, whose
    teachers' similarity caches its pack holds (`<arch>-kd2-anneal-sp-<teachers>`); scratch runs
    pack with each other."""
    record = method(run["method"])
    if record.similarity:
        family = f"{record.name}-{run['teachers']}"
    elif not record.teachers:
        family = record.name
    else:
        family = "kd" if record.starts_from is None else f"kd-from-{record.starts_from}"
    return f"{run['arch']}-{family}"
