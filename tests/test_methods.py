"""The method table drives every place that knows a method: its runs and α handling in the grid,
its inputs in the workflow, its loss terms, its table row; and the config schema lists exactly
its methods."""
import copy
import re

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO
from torch.nn import functional as F

from gafkd import grid
from gafkd import names
from gafkd import methods
from gafkd import encodings
from gafkd.archs import ARCH_REGEX
from gafkd.config import check_config_file
from gafkd.errors import ConfigError
from gafkd.methods import METHODS, NAMES, method
from gafkd.report.reporting import table_rows
from gafkd.distill.students import DistillationLoss

KD = {"lambda": 0.7, "temperature": 4.0, "standardize_logits": False, "reduction": "mean",
      "beta": 50.0, "sp_merge": "raw"}


@pytest.fixture(scope="module")
def config():
    config = check_config_file(REPO / "config.yaml")
    config["students"]["teacher_archs"] = ["wrn16-1", "wrn16-3"]
    config["teachers"]["archs"] = ["wrn16-1", "wrn16-3"]
    return config


def run_of(config, record, alpha="0.5"):
    tag = names.teachers_tag(record.name, "wrn16-3", "gasf")
    alpha = methods.alpha_tag(record.alpha) if record.alpha is not None else alpha
    return {"dataset": "basicmotions", "fold": "predefined", "arch": config["students"]["arch"],
            "method": record.name, "teachers": tag, "alpha": alpha, "seed": "2"}


def test_the_table_names_each_method_once_and_unknown_names_are_refused():
    assert len(set(NAMES)) == len(NAMES) == len(METHODS)
    with pytest.raises(ConfigError, match=r"unknown student method 'kd3' \(known: scratch, kd-gaf"):
        method("kd3")


def test_the_schema_lists_exactly_the_tables_methods_the_encodings_and_the_architecture_pattern():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    students = schema["properties"]["students"]["properties"]
    assert students["methods"]["items"]["enum"] == list(NAMES)
    assert students["methods"]["default"] == list(NAMES)
    arch_patterns = [students["arch"]["pattern"], students["teacher_archs"]["items"]["pattern"],
                     schema["properties"]["teachers"]["properties"]["archs"]["items"]["pattern"]]
    assert arch_patterns == [f"^{ARCH_REGEX}$"] * 3
    described = schema["properties"]["images"]["properties"]["methods"]["description"]
    assert all(re.search(rf"\b{m}\b", described) for m in encodings.IMAGE_METHODS)      # checked in gafkd.grid


@pytest.mark.parametrize("record", METHODS, ids=NAMES)
def test_alpha_handling(record, config):
    students = {**config["students"], "methods": [record.name], "alphas": [0.1, 0.3], "paired_images": ["pi"]}
    config = {**config, "students": students, "images": {**config["images"], "methods": ["gasf", "pi"]}}
    cells = grid.student_cells(config)
    # one image teacher: every encoding's; a pair: the signal teacher and each paired encoding's
    encodings = {(): [None], ("gaf",): ["gasf", "pi"], ("sig",): [None], ("gaf", "sig"): ["pi"]}[record.teachers]
    per_arch = len(students["teacher_archs"]) * len(encodings) if record.teachers else 1
    alphas = ["0.1", "0.3"] if record.alpha_grid else [methods.alpha_tag(record.alpha)]
    assert sorted(alpha for _, _, alpha in cells) == sorted(alphas * per_arch)
    assert {tag for _, tag, _ in cells} == (
        {names.teachers_tag(record.name, a, e) for a in students["teacher_archs"] for e in encodings}
        if record.teachers else {"none"})
    if record.alpha_grid:
        names.check_alpha(record.name, 0.3)
    else:
        names.check_alpha(record.name, record.alpha)
        with pytest.raises(ConfigError, match=f"method '{record.name}' has α = {record.alpha:g}, not 0.3"):
            names.check_alpha(record.name, 0.3)


@pytest.mark.parametrize("source", ["cache", "online"])
@pytest.mark.parametrize("record", METHODS, ids=NAMES)
def test_inputs(record, source, config):
    config = copy.deepcopy(config)
    config["students"]["kd"]["sp_source"] = source
    config["students"]["reuse_teacher_runs"] = False
    run = run_of(config, record)
    inputs = grid.student_inputs(config, run)
    folder = {"gaf": "gasf", "sig": "sig"}       # the image teacher's folder is its encoding's
    teacher = "results/basicmotions/predefined/teachers/{}/wrn16-3/seed2"
    expected = {"windows": "results/basicmotions/windows.h5",
                **{f"{m}_outputs": f"{teacher.format(folder[m])}/outputs.h5" for m in record.teachers}}
    if record.similarity and source == "cache":
        expected.update({f"{m}_similarity": f"{teacher.format(folder[m])}/similarity.h5" for m in record.teachers})
    if record.similarity and source == "online":
        expected.update({f"{m}_model": f"{teacher.format(folder[m])}/model.pt" for m in record.teachers})
        expected["images"] = "results/basicmotions/images_gasf32.h5"
    if record.starts_from:
        expected["init"] = ("results/basicmotions/predefined/students/wrn16-1/"
                            f"{record.starts_from}/none/alpha0/seed2/model.pt")
    assert inputs == expected
    settings = grid.student_settings(config, run)
    assert ("kd" in settings) == bool(record.teachers)
    assert ("beta" in settings.get("kd", {})) == record.similarity
    assert ("images" in settings) == record.similarity


def test_a_scratch_student_of_a_teacher_run_reads_the_teachers_files(config):
    run = run_of(config, method("scratch"))
    run["arch"] = "wrn16-3"
    inputs = grid.student_inputs(config, run)
    assert inputs["same_run_model"] == "results/basicmotions/predefined/teachers/sig/wrn16-3/seed2/model.pt"
    assert set(inputs) == {"windows", *names.SAME_RUN_FILES}
    config = copy.deepcopy(config)
    config["students"]["reuse_teacher_runs"] = False
    assert "same_run_model" not in grid.student_inputs(config, run)


@pytest.mark.parametrize("record", METHODS, ids=NAMES)
def test_loss_terms(record):
    torch.manual_seed(0)
    n, classes = 6, 3
    student = torch.randn(n, classes)
    groups = [torch.randn(n, 4, 5), torch.randn(n, 8)]
    targets = torch.randint(0, classes, (n,))
    index = torch.arange(n)
    alpha = record.alpha if record.alpha is not None else 0.4

    class Grams:
        def __init__(self, scale):
            self.scale = scale

        def grams(self, index, host_index=None):
            return {m: [self.scale * (g @ g.t()) + torch.eye(n) for g in (groups[0].flatten(1), groups[1])]
                    for m in ("gaf", "sig")}

    def loss(logits_scale, gram_scale):
        logits = {m: logits_scale * torch.randn(n, classes, generator=torch.Generator().manual_seed(i))
                  for i, m in enumerate(record.teachers)}
        sp = Grams(gram_scale) if record.similarity else None
        return DistillationLoss(record.name, alpha, KD, logits, sp)(student, groups, targets, index)

    if not record.teachers:
        assert torch.equal(loss(1.0, 1.0), F.cross_entropy(student, targets))
        return
    assert not torch.equal(loss(1.0, 1.0), loss(3.0, 1.0)), "the teachers' logits enter the loss"
    assert torch.equal(loss(1.0, 1.0), loss(1.0, 2.0)) != record.similarity, \
        "the teachers' similarity enters the loss exactly for SP methods"


@pytest.mark.parametrize("record", METHODS, ids=NAMES)
def test_table_row(record):
    alpha = record.alpha if record.alpha is not None else 0.5
    images = "pi" if "gaf" in record.teachers else ""
    frame = pd.DataFrame({"method": ["teacher-sig", record.name], "images": ["", images],
                          "alpha": [float("nan"), alpha]})
    rows = table_rows(frame, [0.1, 0.5])
    base = {"kd-gaf": "1 teacher (PI)"}.get(record.name, record.label + (" (PI + signal)" if images else ""))
    label = base if record.alpha is not None else f"{base}, α = 0.5"
    assert rows == [("signal teacher", "teacher-sig", "", None),
                    (label, record.name, images, None if record.alpha is not None else 0.5)]


def test_table_rows_follow_the_tables_order():
    frame = pd.DataFrame({"method": list(reversed(NAMES)), "images": "",
                          "alpha": [m.alpha if m.alpha is not None else 0.5 for m in reversed(METHODS)]})
    order = [m for _, m, _, _ in table_rows(frame, [0.5])]
    fixed = [m.name for m in METHODS if not m.alpha_grid]
    gridded = [m.name for m in METHODS if m.alpha_grid]
    assert order == fixed + gridded


def test_tables_name_encodings_as_the_docs_do():
    from gafkd.encodings import encoding_label
    from gafkd.methods import student_label

    assert [encoding_label(e) for e in ("gasf", "gasf+gadf+mtf", "pi", "qgasf", "qgasf+qgadf")] == [
        "GASF", "GASF+GADF+MTF", "PI", "Q-GASF", "Q-GASF+Q-GADF"]
    assert student_label("kd-gaf", "qgadf") == "1 teacher (Q-GADF)"
    assert student_label("kd2-anneal-sp", "qgasf") == "+ SP (Q-GASF + signal)"
    assert student_label("kd-sig", "qgasf") == "1 teacher (signal)"
