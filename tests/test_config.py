import copy
import re
import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from test_workflow import snakemake
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gafkd.config import check_config, check_config_file
from gafkd.configfile import load_yaml, schema_errors
from gafkd.data.datasets import resolve_dataset
from gafkd.errors import ConfigError

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def snakemake_with(tmp_path, config):
    """Snakemake on `config`, written to a file in tmp_path, run there as a user would."""
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    return snakemake(tmp_path, configfile=tmp_path / "bad.yaml")


def default_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid_and_defaults_are_filled():
    config = default_config()
    del config["images"]
    validate(config, SCHEMA)
    assert config["images"] == {"methods": ["gasf"], "size": 64, "pi": {"recipe": "lab"}, "dtype": "float16",
                                "qgaf": {"scaling": "minmax", "shots": None, "seed": 0}}
    check_config(config)
    assert config["datasets"]["basicmotions"]["split"]["test_fraction"] == 0.2


@pytest.mark.parametrize("change,named", [
    (lambda c: c["datasets"]["basicmotions"].update(windw=100), "windw"),
    (lambda c: c["images"].update(pi={"recipe": "tidy"}), "tidy"),
    (lambda c: c["images"].update(size="64"), "'64'"),
    (lambda c: c["images"].update(methods=[]), "[] should be non-empty"),
    (lambda c: c["images"].update(methods=["gasf", "mtf", "gasf"]), "has non-unique elements"),
    (lambda c: c["datasets"]["basicmotions"]["split"].update(val_fraction=1.5), "1.5"),
    (lambda c: c["datasets"]["basicmotions"].update(source="geneactiv"), "geneactiv"),
    (lambda c: c.update(imgs={}), "imgs"),
    (lambda c: c["students"].setdefault("kd", {}).update(reduction="sum"), "sum"),
    (lambda c: c["students"].setdefault("kd", {}).update(sp_merge="average"), "average"),
    (lambda c: c["training"].update(lr_boundaries="ceil"), "ceil"),
    (lambda c: c["datasets"]["basicmotions"].update(standardize="zscore"), "zscore"),
    (lambda c: c["images"].update(qgaf={"scaling": "log"}), "log"),
    (lambda c: c["images"].update(qgaf={"shots": 0}), "minimum of 1"),
])
def test_schema_names_the_bad_key_or_value(change, named):
    config = default_config()
    change(config)
    with pytest.raises(WorkflowError) as error:
        validate(config, SCHEMA)
    assert named in str(error.value.args)


@pytest.mark.parametrize("spec,match", [
    ({"source": "geneactiv_mat", "window": 500}, r"datasets.g.raw: required for source 'geneactiv_mat'"),
    ({"source": "geneactiv_mat", "raw": "x", "window": 500, "step": 22},
     r"datasets.g.step: does not apply to source 'geneactiv_mat'"),
    ({"source": "basicmotions", "raw": "x"}, r"datasets.g.raw: does not apply to source 'basicmotions'"),
    ({"source": "pamap2", "raw": "x", "channels": "wrist"}, r"datasets.g.channels: unknown PAMAP2 channel set"),
    ({"source": "pamap2", "raw": "x", "split": {"kind": "predefined"}},
     r"datasets.g.split.kind: 'predefined' needs a source with a published test set"),
    ({"source": "basicmotions", "split": {"kind": "loso"}}, r"basicmotions has no subject ids"),
    ({"source": "pamap2", "raw": "x", "split": {"kind": "random", "val_fraction": 0.5, "test_fraction": 0.5}},
     r"val_fraction \+ test_fraction must be below 1"),
    ({"source": "nope"}, r"datasets.g.source: unknown source 'nope'"),
    ({"source": "geneactiv_mat", "raw": "x", "window": 500, "protocol": "lab"},
     r"datasets.g.protocol: does not apply to source 'geneactiv_mat'"),
    ({"source": "pamap2", "raw": "x", "protocol": "paper"},
     r"datasets.g.protocol: unknown PAMAP2 protocol 'paper' \(known: lab, clean\)"),
    ({"source": "pamap2", "raw": "x", "channels": ["hand_orientation_0"]},
     r"datasets.g.protocol: .*hand_orientation_0.*protocol 'lab'"),
    ({"source": "pamap2", "raw": "x", "split": {"kind": "loso", "test_subjects": [101]}},
     r"datasets.g.split.test_subjects: applies to split kind 'holdout' only, not 'loso'"),
    ({"source": "geneactiv_mat", "raw": "x", "window": 500, "class_map": {1: "a", "2": "b"}},
     r"datasets.g.class_map: keys mix numbers \[1\] and text \['2'\]"),
    ({"source": "geneactiv_mat", "raw": "x", "window": 500, "class_map": {"walk": "a"}},
     r"datasets.g.class_map: key 'walk' is not an integer class id"),
    ({"source": "geneactiv_mat", "raw": "x", "window": 500, "class_map": {1.5: "a"}},
     r"datasets.g.class_map: key 1.5 is not an integer class id"),
    ({"source": "geneactiv_mat", "raw": "x", "window": 500, "class_map": {"1": "a", "01": "b"}},
     r"datasets.g.class_map: keys '1' and '01' are both class id 1"),
    ({"source": "pamap2", "raw": "x", "class_map": {1: "lying", 8: "nothing"}},
     r"datasets.g.class_map: \[8\] are not PAMAP2 activity ids"),
])
def test_source_specific_checks(spec, match):
    spec = copy.deepcopy(spec)
    spec.setdefault("split", {})
    spec["split"] = {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0, **spec["split"]}
    with pytest.raises(ConfigError, match=match):
        resolve_dataset("g", spec)


def test_class_map_keys_written_as_text_are_accepted():
    spec = resolve_dataset("g", {"source": "geneactiv_mat", "raw": "x", "window": 500,
                                 "class_map": {"1": "a", "2": "b"},
                                 "split": {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}})
    assert spec["class_map"] == {"1": "a", "2": "b"}


@pytest.mark.parametrize("change,match", [
    (lambda c: c["students"].update(arch="wrn15-1"), r"^students.arch: architecture 'wrn15-1'"),
    (lambda c: c["teachers"].update(archs=["wrn16-1", "wrn15-1"]),
     r"^teachers.archs: architecture 'wrn15-1'"),
    (lambda c: c["students"].update(teacher_archs=["wrn15-1"]),
     r"^students.teacher_archs: architecture 'wrn15-1'"),
])
def test_architecture_errors_name_the_key(change, match):
    config = default_config()
    change(config)
    validate(config, SCHEMA)
    with pytest.raises(ConfigError, match=match):
        check_config(config)


def test_source_defaults_are_filled():
    spec = resolve_dataset("p", {"source": "pamap2", "raw": "x", "split": {"val_fraction": 0.1,
                                                                            "test_fraction": 0.2, "seed": 0}})
    assert (spec["window"], spec["step"], spec["downsample"], spec["channels"]) == (100, 22, 3, "lab40")
    assert (spec["protocol"], spec["standardize"]) == ("lab", "mean_window_std")
    assert spec["split"]["kind"] == "loso"
    clean = resolve_dataset("p", {"source": "pamap2", "raw": "x", "channels": ["hand_orientation_0"],
                                  "protocol": "clean", "split": {}})
    assert clean["protocol"] == "clean"


def test_image_larger_than_window():
    config = default_config()
    config["images"]["size"] = 128
    validate(config, SCHEMA)
    with pytest.raises(ConfigError, match=r"images.size: 128 is larger than the window length 100 of dataset 'basicmotions'"):
        check_config(config)


def image_config(method, window, size=2):
    config = default_config()
    config["images"].update(methods=[method], size=size)
    config["students"]["paired_images"] = None
    config["datasets"] = {"g": {"source": "geneactiv_mat", "raw": "x", "window": window,
                                "class_map": {1: "a", 2: "b"}}}
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("method, match", [
    ("rp", r"images.methods: unknown encoding 'rp' in 'rp' \(known: gasf, gadf, qgasf, qgadf, mtf, pi"),
    ("gasf+gadf+gasf", r"images.methods: the stack 'gasf\+gadf\+gasf' names gasf more than once"),
    ("gasf++mtf", r"images.methods: unknown encoding ''"),
])
def test_image_encodings_are_checked_before_any_job(method, match):
    with pytest.raises(ConfigError, match=match):
        check_config(image_config(method, 100))
    check_config(image_config("gasf+gadf+mtf+pi", 100))        # a stack of all four is fine


def test_every_entry_of_images_methods_is_checked():
    config = image_config("gasf", 100)
    config["images"]["methods"] = ["gasf", "mtf", "gasf+mtf+rp"]
    with pytest.raises(ConfigError, match=r"images.methods: unknown encoding 'rp' in 'gasf\+mtf\+rp'"):
        check_config(config)


def test_paired_images_must_be_configured_encodings():
    config = image_config("gasf", 100)
    config["images"]["methods"] = ["gasf", "pi"]
    config["students"]["paired_images"] = ["pi", "mtf"]
    with pytest.raises(ConfigError, match=r"students.paired_images: \['mtf'\] not in images.methods \['gasf', 'pi'\]"):
        check_config(config)
    config["students"]["paired_images"] = ["pi"]
    check_config(config)


def test_the_old_images_method_key_says_what_to_write():
    config = default_config()
    config["images"] = {"method": "gadf", "size": 64}
    problem = schema_errors(config, SCHEMA)
    assert problem.startswith("images.method: replaced by images.methods")
    assert "write `methods: [gadf]`" in problem


@pytest.mark.parametrize("old, precision", [
    ({"bf16": False}, "fp32"), ({"bf16": True}, "bf16"), ({"fast_math": True}, "tf32"),
    ({"fast_math": False}, "fp32"), ({"bf16": False, "fast_math": True}, "tf32"),
    ({"bf16": True, "fast_math": True}, "bf16"),
])
def test_the_old_precision_keys_say_what_precision_to_write(old, precision):
    config = default_config()
    config["training"] = {"epochs": 3, **old}
    problem = schema_errors(config, SCHEMA)
    assert problem.startswith(f"training.{next(iter(old))}: replaced by training.precision")
    assert f"write `precision: {precision}`" in problem
    assert all(key in problem.split("remove")[1] for key in old)


def test_the_precision_is_one_of_three():
    config = default_config()
    config["training"] = {"precision": "fp16"}
    assert schema_errors(config, SCHEMA).startswith("training.precision: 'fp16' is not one of")
    for precision in ("fp32", "tf32", "bf16"):
        config["training"] = {"precision": precision}
        assert schema_errors(config, SCHEMA) is None


def test_persistence_images_need_windows_long_enough():
    from gafkd.images.persistence import MIN_LENGTH

    short = MIN_LENGTH - 1                     # the schema's shortest window and image: 2
    with pytest.raises(ConfigError, match=rf"images.methods: pi needs windows of at least {MIN_LENGTH} "
                                          rf"samples, dataset 'g' has {short}"):
        check_config(image_config("gasf+pi", short))
    check_config(image_config("gasf+pi", MIN_LENGTH))
    check_config(image_config("gasf", short))


def test_bad_config_fails_before_any_job(tmp_path):
    config = default_config()
    config["datasets"]["basicmotions"]["split"]["kind"] = "loso"
    run = snakemake_with(tmp_path, config)
    assert run.returncode != 0
    assert "datasets.basicmotions.split.kind" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


def test_test_subjects_without_raw_files_stop_before_any_job(tmp_path):
    from rawfiles import make_gene_folder
    make_gene_folder(tmp_path / "raw", subjects=(101, 102, 103, 104))
    config = {"datasets": {"g": {"source": "geneactiv_mat", "raw": str(tmp_path / "raw"), "window": 50,
                                 "split": {"kind": "holdout", "test_subjects": [102, 999]}}},
              "images": {"size": 16}}
    run = snakemake_with(tmp_path, config)
    assert run.returncode != 0
    assert ("datasets.g.split.test_subjects: no raw files for subject(s) [999] in "
            f"{tmp_path / 'raw'} (subjects there: [101, 102, 103, 104])") in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


def test_schema_error_names_the_key_and_allowed_values_before_any_job(tmp_path):
    config = default_config()
    config["students"] = {"kd": {"reduction": "sum"}}
    run = snakemake_with(tmp_path, config)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Invalid config: students.kd.reduction: 'sum' is not one of ['mean', 'batchmean']" in output
    assert len(output.splitlines()) < 15      # the message, not the schema
    assert not (tmp_path / "results").exists()


def test_config_file_check_names_the_line_of_a_yaml_error(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("datasets:\n  basicmotions: {source: basicmotions\nimages: {}\n")
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("datasets:\n  basicmotions: {source: basicmotions}\nstudents: {arch: wrn15-1}\n")
    run = subprocess.run([sys.executable, "-m", "gafkd.config", str(REPO / "config.yaml"), str(broken),
                          str(bad_key)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert run.returncode == 1
    assert f"{REPO / 'config.yaml'}: valid" in run.stdout
    assert f"{broken}, line 3, column 7: not valid YAML" in run.stderr
    assert f"{bad_key}: students.arch:" in run.stderr


@pytest.mark.parametrize("pack, message", [
    (0, "students.pack: 0 is less than the minimum of 1"),
    (2.5, "students.pack: 2.5 is not of type 'integer'"),
    ("8", "students.pack: '8' is not of type 'integer'"),
])
def test_pack_width_below_one_or_not_an_integer_names_the_key(tmp_path, pack, message):
    config = default_config()
    config["students"]["pack"] = pack
    run = snakemake_with(tmp_path, config)
    assert run.returncode != 0
    assert f"Invalid config: {message}" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


def test_a_key_given_twice_is_refused_in_the_workflow_and_the_file_check(tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text("datasets:\n  basicmotions: {source: basicmotions}\ntraining: {epochs: 2}\n"
                     "students: {seeds: [1]}\ntraining: {epochs: 3}\n")
    message = f"{twice}, line 5: key 'training' is given twice in one mapping (first on line 3)"
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config_file(twice)
    nested = tmp_path / "nested.yaml"
    nested.write_text("datasets:\n  basicmotions: {source: basicmotions, source: pamap2}\n")
    with pytest.raises(ConfigError, match="line 2: key 'source' is given twice"):
        check_config_file(nested)
    run = snakemake(tmp_path, configfile=twice)
    assert run.returncode != 0
    assert f"Invalid config: {message}" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()
    anchors = tmp_path / "anchors.yaml"           # a YAML merge key is not a repeated key
    anchors.write_text("datasets:\n  basicmotions: {source: basicmotions}\nbase: &base {epochs: 2}\n"
                       "training: {<<: *base, epochs: 3}\n")
    assert load_yaml(anchors)["training"] == {"epochs": 3}


@pytest.mark.parametrize("where, change, key", [
    ("training", {"lr": float("inf")}, "training.lr: inf"),
    ("training", {"lr": float("nan")}, "training.lr: nan"),
    ("training", {"weight_decay": float("inf")}, "training.weight_decay: inf"),
    ("students", {"kd": {"temperature": float("inf")}}, "students.kd.temperature: inf"),
    ("students", {"alphas": [0.5, float("nan")]}, "students.alphas.1: nan"),
])
def test_numbers_that_are_not_finite_name_their_key(where, change, key):
    config = default_config()
    config.setdefault(where, {}).update(change)
    validate(config, SCHEMA)
    with pytest.raises(ConfigError, match=re.escape(f"{key} is not a finite number")):
        check_config(config)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["students"].update(methods=[]), "students.methods: [] should be non-empty"),
    (lambda c: c["teachers"].update(seeds=[99999999999999999999]), "teachers.seeds.0: 99999999999999999999 is greater than the maximum of 18446744073709551615"),
    (lambda c: c["students"].update(seeds=[2**64]), "students.seeds.0: 18446744073709551616 is greater than the maximum"),
])
def test_empty_methods_and_seeds_beyond_torch_name_the_key(change, message):
    config = default_config()
    change(config)
    assert message in schema_errors(config, SCHEMA)


def test_the_largest_seed_torch_accepts_is_a_valid_config():
    config = default_config()
    config["teachers"]["seeds"] = config["students"]["seeds"] = [2**64 - 1]
    assert not schema_errors(config, SCHEMA)
    validate(config, SCHEMA)
    check_config(config)


def test_an_empty_class_name_names_the_key():
    config = {"datasets": {"g": {"source": "geneactiv_mat", "raw": "x", "window": 100,
                                 "class_map": {1: "walking", 2: ""}}}}
    validate(config, SCHEMA)
    with pytest.raises(ConfigError, match=r"datasets.g.class_map: class id 2 has an empty name"):
        check_config(config)


@pytest.mark.parametrize("kind, allowed", [("loso", True), ("holdout", True), ("random", False)])
def test_validation_on_the_test_set_needs_test_subjects(kind, allowed):
    spec = {"source": "geneactiv_mat", "raw": "x", "window": 50, "split": {"kind": kind, "validation": "test", "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}}
    if allowed:
        assert resolve_dataset("g", spec)["split"]["validation"] == "test"
        return
    with pytest.raises(ConfigError, match=r"datasets.g.split.validation: 'test' picks each fold's checkpoint on "
                                          r"its test subject\(s\), and split kind 'random' has none"):
        resolve_dataset("g", spec)


def lab_config_with(tmp_path, change):
    config = yaml.safe_load((REPO / "configs/gene14_w500.yaml").read_text())
    change(config)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_lab_reference_fills_in_its_image_teachers(tmp_path):
    config = check_config_file(lab_config_with(tmp_path, lambda c: None))
    values = config["report"]["reference"]["gene14_w500"]["values"]
    assert [(v["method"], v["images"], v.get("alpha")) for v in values] == [
        ("teacher-gaf", "gasf", None), ("kd-gaf", "gasf", None), ("kd2", "gasf", 0.3),
        ("kd2-anneal", "gasf", 0.3), ("kd2-anneal-sp", "gasf", 0.3)]


def _entry(index, **items):
    def change(config):
        config["report"]["reference"]["gene14_w500"]["values"][index].update(items)
    return change


@pytest.mark.parametrize("change, message", [
    (lambda c: c["students"].update(methods=["scratch", "kd-gaf", "kd2", "kd2-anneal"]),
     r"values\[4\]: method 'kd2-anneal-sp' is not run by this config \(students.methods: scratch, kd-gaf"),
    (_entry(2, alpha=0.4), r"values\[2\]: alpha 0.4 is not run by this config \(students.alphas: "
                           r"\[0.1, 0.3, 0.5, 0.7, 0.9\]\)"),
    (_entry(1, alpha=0.3), r"values\[1\]: 'kd-gaf' has no α grid; remove alpha"),
    (_entry(1, **{"lambda": 0.1}), r"values\[1\]: lambda 0.1 is not run by this config \(students.kd.lambda: 0.7\)"),
    (_entry(0, **{"lambda": 0.7}), r"values\[0\]: 'teacher-gaf' is not distilled; remove lambda"),
    (_entry(1, images="mtf"), r"values\[1\]: images 'mtf': this config runs 'kd-gaf' with gasf"),
    (_entry(3, accuracy={"wrn40-2": 70.0}), r"values\[3\]: teacher architecture\(s\) \['wrn40-2'\] not in "
                                            r"students.teacher_archs"),
    (_entry(3, method="kd2"), r"values\[3\]: the same row as report.reference.gene14_w500.values\[2\]"),
    (lambda c: c["report"]["reference"].update(gene7=c["report"]["reference"]["gene14_w500"]),
     r"report.reference.gene7: no such dataset \(datasets: gene14_w500\)"),
    (lambda c: (c["teachers"].update(modalities=["sig"]), c["students"].update(methods=["scratch", "kd-sig"])),
     r"values\[0\]: method 'teacher-gaf' is not run by this config \(teachers.modalities: \['sig'\]\)"),
])
def test_a_reference_the_grid_does_not_run_names_its_entry(tmp_path, change, message):
    with pytest.raises(ConfigError, match=r"report.reference.gene14_w500." + message
                       if message.startswith("values") else message):
        check_config_file(lab_config_with(tmp_path, change))


def test_a_reference_accuracy_is_a_mean_or_mean_and_std(tmp_path):
    problem = schema_errors(yaml.safe_load(lab_config_with(tmp_path, _entry(0, accuracy={"wrn16-1": [63.1]}))
                                           .read_text()), SCHEMA)
    assert problem and "report.reference.gene14_w500.values.0.accuracy.wrn16-1" in problem, problem
