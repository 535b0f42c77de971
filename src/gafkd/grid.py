"""The experiment grid of a validated config: every teacher and student run, its result folder,
its settings (what changes its result) and its inputs. Torch-free: the workflow, the benchmarks
and the tests expand the grid with these functions, so it is expanded in one place."""

import functools
import json
from dataclasses import dataclass

from gafkd.encodings import QGAF_DEFAULTS, QGAF_METHODS, encoding_parts, qgaf_identity
from gafkd.methods import alpha_tag, method, pack_group
from gafkd.names import (IMAGE_ROLE, SAME_RUN_FILES, SIGNAL, STUDENT_RUN, TEACHER_RUN, check_alpha,
                         is_image_modality, parse_teachers_tag, tag_encoding, teacher_arch, teachers_tag)
from gafkd.runfiles import RUN_FILE_NAMES, member_name
from gafkd.same_run import same_run_teacher


def image_encodings(config):
    """The encodings of images.methods, in the config's order."""
    return list(config["images"]["methods"])


def paired_encodings(config):
    """The image teachers' encodings that two-teacher students pair with the signal teacher:
    students.paired_images, default every images.methods entry."""
    chosen = config["students"].get("paired_images")
    return image_encodings(config) if chosen is None else list(chosen)


def canonical(value):
    """A copy with sorted keys: the order of keys in a config file must not rerun anything."""
    return json.loads(json.dumps(value, sort_keys=True))


def image_tag(config, encoding):
    """'gasf64', 'pi64-clean-float32': the image cache's encoding and size, and the
    persistence-image recipe and dtype where they are not the defaults, as its file name says."""
    settings = image_settings(config, encoding)
    tag = f"{settings['method']}{settings['size']}"
    if settings.get("pi", {}).get("recipe", "lab") != "lab":
        tag += f"-{settings['pi']['recipe']}"
    qgaf = settings.get("qgaf", QGAF_DEFAULTS)
    if qgaf["scaling"] != "minmax":
        tag += "-unscaled" if qgaf["scaling"] == "none" else f"-{qgaf['scaling']}"
    if qgaf["shots"]:
        tag += f"-shots{qgaf['shots']}" + (f"-seed{qgaf['seed']}" if qgaf["seed"] else "")
    if "dtype" in settings:
        tag += f"-{settings['dtype']}"
    return tag


def images_path(config, dataset, encoding):
    return f"results/{dataset}/images_{image_tag(config, encoding)}.h5"


def image_tags(config):
    """The cache name of every images.methods entry."""
    return [image_tag(config, encoding) for encoding in image_encodings(config)]


def method_encodings(config, name):
    """The image teachers' encodings that method `name` learns from: every images.methods entry
    for the one image teacher, students.paired_images for a pair, [None] without an image teacher."""
    roles = method(name).teachers
    if IMAGE_ROLE not in roles:
        return [None]
    return image_encodings(config) if len(roles) == 1 else paired_encodings(config)


def student_cells(config):
    """(method, teachers tag, alpha tag) of every student run of one seed and fold: scratch
    once, every other method per teacher architecture and image encoding (method_encodings),
    over the alphas where it has no fixed α."""
    students = config["students"]
    cells = []
    for name in students["methods"]:
        record = method(name)
        archs = students["teacher_archs"] if record.teachers else [None]
        alphas = students["alphas"] if record.alpha_grid else [record.alpha]
        for encoding in method_encodings(config, name):
            for arch in archs:
                for alpha in alphas:
                    cells.append((name, teachers_tag(name, arch, encoding), alpha_tag(alpha)))
    return cells


def teacher_modalities(config):
    """The teacher folders' modalities: each images.methods entry for 'gaf', then 'sig'."""
    modalities = config["teachers"]["modalities"]
    return [m for role in modalities for m in (image_encodings(config) if role == IMAGE_ROLE else [role])]


def teacher_runs(config, folds):
    """Every teacher run of a validated config: {dataset, fold, modality, arch, seed} with
    wildcard strings; `folds`: {dataset: fold names}."""
    teachers = config["teachers"]
    return [{"dataset": dataset, "fold": fold, "modality": modality, "arch": arch, "seed": str(seed)}
            for dataset in config["datasets"] for fold in folds[dataset]
            for modality in teacher_modalities(config) for arch in teachers["archs"]
            for seed in teachers["seeds"]]


def student_runs(config, folds):
    """Every student run of a validated config: {dataset, fold, arch, method, teachers, alpha,
    seed} with wildcard strings; `folds`: {dataset: fold names}."""
    students = config["students"]
    cells = student_cells(config)
    return [{"dataset": dataset, "fold": fold, "arch": students["arch"], "method": name,
             "teachers": tag, "alpha": alpha, "seed": str(seed)}
            for dataset in config["datasets"] for fold in folds[dataset]
            for seed in students["seeds"] for name, tag, alpha in cells]


def teacher_seed(config, student_seed):
    fixed = config["students"]["teacher_seed"]
    return int(student_seed) if fixed == "same" else fixed


def teacher_dir(config, run, modality, arch):
    """The folder of the teacher of `modality` and `arch` that student `run` learns from."""
    return TEACHER_RUN.format(dataset=run["dataset"], fold=run["fold"], modality=modality, arch=arch,
                              seed=teacher_seed(config, run["seed"]))


def teacher_settings(config, run):
    """Exactly what changes a teacher's result (its rule's params: editing anything else never
    retrains). devices.threads is the one device setting that changes numbers. A signal teacher
    trained in a pack (teacher_packs) records its pack, as a packed student does."""
    settings = {"dataset": run["dataset"], "fold": run["fold"], "modality": run["modality"],
                "arch": run["arch"], "seed": int(run["seed"]), "training": config["training"],
                "threads": config["devices"]["threads"]}
    if is_image_modality(run["modality"]):
        settings["images"] = image_settings(config, run["modality"])
    pack = teacher_pack_of(config, run)
    if pack is not None:
        settings["pack"] = {"width": len(pack.runs), "member": pack.runs.index(_teacher_id(run))}
    return canonical(settings)


def image_settings(config, encoding):
    """What changes the image cache of `encoding`: the encoding and size, the persistence-image
    recipe when the encoding has persistence images, the Q-GAF scaling and shots when it has
    Q-GAF images, and its dtype when not the default float16
    (so that the runs made before images.dtype existed keep their identity)."""
    images = config["images"]
    settings = {"method": encoding, "size": images["size"]}
    if "pi" in encoding_parts(encoding):
        settings["pi"] = images["pi"]
    if set(QGAF_METHODS) & set(encoding_parts(encoding)):
        settings["qgaf"] = qgaf_identity(images.get("qgaf"))
    if images.get("dtype", "float16") != "float16":
        settings["dtype"] = images["dtype"]
    return settings


def student_settings(config, run):
    """Exactly what changes a student's result. A run trained in a pack (student_packs) records
    its pack's width and its place in it: a packed network computes with other kernels than a
    solo one, so its numbers differ from the solo run's by rounding."""
    settings = solo_student_settings(config, run)
    pack = pack_of(config, run)
    if pack is not None:
        settings["pack"] = {"width": len(pack.runs), "member": pack.runs.index(_run_id(run))}
    return settings


def solo_student_settings(config, run):
    """What changes the result of student `run` trained alone."""
    record = method(run["method"])
    settings = {"dataset": run["dataset"], "fold": run["fold"], "arch": run["arch"],
                "method": run["method"], "teachers": run["teachers"], "alpha": float(run["alpha"]),
                "seed": int(run["seed"]), "training": config["training"],
                "threads": config["devices"]["threads"]}
    if record.teachers:
        kd = dict(config["students"]["kd"])
        if not record.similarity:
            for key in ("beta", "sp_merge", "sp_source"):
                del kd[key]  # SP settings never rerun a student without SP
        settings["kd"] = kd
        settings["teacher_seed"] = teacher_seed(config, run["seed"])
    if record.similarity:
        settings["images"] = image_settings(config, tag_encoding(run["teachers"]))
    return canonical(settings)


@dataclass(frozen=True)
class Pack:
    """Student runs, or signal teacher runs, trained together in one job (gafkd.train.packed), member
    k = runs[k]."""
    runs: tuple                  # wildcard dicts of strings (_run_id, _teacher_id)
    index: int                   # its place among the packs of its group
    group: str                   # what its runs share (pack_group, or the teachers' modality-arch)

    @property
    def teachers(self):
        return "modality" in self.runs[0]

    @property
    def label(self):
        return f"{self.group}-pack{self.index}"

    def outputs(self):
        folder = TEACHER_RUN if self.teachers else STUDENT_RUN
        return {member_name(k, key): f"{folder.format(**run)}/{RUN_FILE_NAMES[key]}"
                for k, run in enumerate(self.runs) for key in RUN_FILE_NAMES}


STUDENT_KEYS = ("dataset", "fold", "arch", "method", "teachers", "alpha", "seed")
TEACHER_KEYS = ("dataset", "fold", "modality", "arch", "seed")


def _teacher_id(run):
    """A teacher run's wildcards as strings (how packs hold their runs)."""
    return {key: str(run[key]) for key in TEACHER_KEYS}


def _chunks(runs, width, group):
    """`runs` in packs of up to `width`; a chunk of one run stays a solo job."""
    chunks = [runs[start:start + width] for start in range(0, len(runs), width)]
    return [Pack(tuple(chunk), i, group) for i, chunk in enumerate(chunks) if len(chunk) > 1]


def _teacher_cell_packs(config, dataset, fold, arch):
    """The packs of the signal teachers of one dataset, fold and architecture, in seed order."""
    runs = [_teacher_id({"dataset": dataset, "fold": fold, "modality": SIGNAL, "arch": arch, "seed": seed})
            for seed in config["teachers"]["seeds"]]
    return _chunks(runs, config["teachers"]["pack"], f"{SIGNAL}-{arch}")


def teacher_packs(config, folds):
    """Every pack of two or more signal teacher runs (teachers.pack > 1): seeds of one dataset,
    fold and architecture. Image teachers train alone."""
    if config["teachers"]["pack"] < 2 or SIGNAL not in teacher_modalities(config):
        return []
    return [pack for dataset in config["datasets"] for fold in folds[dataset]
            for arch in config["teachers"]["archs"] for pack in _teacher_cell_packs(config, dataset, fold, arch)]


def teacher_pack_of(config, run):
    """The pack that teacher `run` is trained in, or None for a solo run."""
    if run["modality"] != SIGNAL or config["teachers"]["pack"] < 2:
        return None
    run = _teacher_id(run)
    for pack in _teacher_cell_packs(config, run["dataset"], run["fold"], run["arch"]):
        if run in pack.runs:
            return pack
    return None


def _run_id(run):
    """A student run's wildcards as strings (how packs hold their runs)."""
    return {key: str(run[key]) for key in STUDENT_KEYS}


def _group_packs(config, dataset, fold):
    """{group: its packs} of one dataset and fold: the runs that train (not those derived from a
    teacher's run) in grid order (student_cells, then seed, then α), grouped by pack_group, in
    chunks of up to students.pack."""
    return _group_packs_of(json.dumps(config, sort_keys=True), dataset, fold)


@functools.lru_cache(maxsize=64)
def _group_packs_of(config_json, dataset, fold):
    """_group_packs of a config given as JSON (every run's settings ask for its pack: expanded
    once per config, dataset and fold)."""
    config = json.loads(config_json)
    students = config["students"]
    groups = {}
    for name, tag, alpha in student_cells(config):
        for seed in students["seeds"]:
            run = {"dataset": dataset, "fold": fold, "arch": students["arch"], "method": name,
                   "teachers": tag, "alpha": alpha, "seed": str(seed)}
            if same_run_teacher_dir(config, run) is None:
                groups.setdefault(pack_group(run), []).append(run)
    # within a cell, seed before α (each in the config's order), as a cell's packs have always held them
    cells = {}
    for name, tag, _ in student_cells(config):
        cells.setdefault((name, tag), len(cells))
    seeds = [str(seed) for seed in students["seeds"]]
    for runs in groups.values():                 # a stable sort: the αs of a cell and seed stay in order
        runs.sort(key=lambda run: (cells[run["method"], run["teachers"]], seeds.index(run["seed"])))
    return {group: _chunks(runs, students["pack"], group) for group, runs in groups.items()}


def student_packs(config, folds):
    """Every pack of two or more student runs (students.pack > 1): runs of one dataset, fold,
    student architecture and pack_group, which differ in seed, α, method or teachers (the
    training settings are config-wide), so a pack is never formed of runs that cannot train
    together."""
    if config["students"]["pack"] < 2:
        return []
    return [pack for dataset in config["datasets"] for fold in folds[dataset]
            for packs in _group_packs(config, dataset, fold).values() for pack in packs]


def pack_of(config, run):
    """The pack that student `run` is trained in, or None for a solo run."""
    if config["students"]["pack"] < 2:
        return None
    run = _run_id(run)
    for pack in _group_packs(config, run["dataset"], run["fold"]).get(pack_group(run), []):
        if run in pack.runs:
            return pack
    return None


def pack_inputs(config, pack):
    """{m<k>_<name>: path} of the files a pack's members read."""
    inputs = teacher_inputs if pack.teachers else student_inputs
    return {member_name(k, name): path for k, run in enumerate(pack.runs)
            for name, path in inputs(config, run).items()}


def pack_settings(config, pack):
    """Each member's settings (its rule's params)."""
    settings = teacher_settings if pack.teachers else student_settings
    return [settings(config, run) for run in pack.runs]


def teacher_inputs(config, run):
    """{name: path} of the files teacher `run` reads (its rule's inputs)."""
    inputs = {"windows": f"results/{run['dataset']}/windows.h5"}
    if is_image_modality(run["modality"]):
        inputs["images"] = images_path(config, run["dataset"], run["modality"])
    return inputs


def same_run_teacher_dir(config, run):
    """The folder of the signal teacher run that student `run` is (gafkd.distill.reuse: a scratch
    student of a configured teacher architecture and seed), or None. Its files are then derived
    from the teacher's instead of training the same run twice (students.reuse_teacher_runs)."""
    if run["method"] != "scratch" or not config["students"]["reuse_teacher_runs"]:
        return None

    def settings_of(dataset, fold, modality, arch, seed):
        return teacher_settings(config, {"dataset": dataset, "fold": fold, "modality": modality,
                                         "arch": arch, "seed": str(seed)})

    teacher = same_run_teacher(solo_student_settings(config, run), config["teachers"], settings_of)
    return None if teacher is None else TEACHER_RUN.format(**teacher)


def student_inputs(config, run):
    """{name: path} of the files student `run` reads (its rule's inputs)."""
    record = method(run["method"])
    teachers = parse_teachers_tag(run["method"], run["teachers"])
    check_alpha(run["method"], run["alpha"])
    inputs = {"windows": f"results/{run['dataset']}/windows.h5"}
    same_run = same_run_teacher_dir(config, run)
    if same_run is not None:
        return {**inputs, **{key: f"{same_run}/{name}" for key, name in SAME_RUN_FILES.items()}}
    for role, (modality, arch) in teachers.items():
        inputs[f"{role}_outputs"] = f"{teacher_dir(config, run, modality, arch)}/outputs.h5"
    if record.similarity:
        if config["students"]["kd"]["sp_source"] == "online":
            for role, (modality, arch) in teachers.items():
                inputs[f"{role}_model"] = f"{teacher_dir(config, run, modality, arch)}/model.pt"
            inputs["images"] = images_path(config, run["dataset"], teachers[IMAGE_ROLE][0])
        else:
            for role, (modality, arch) in teachers.items():
                inputs[f"{role}_similarity"] = f"{teacher_dir(config, run, modality, arch)}/similarity.h5"
    if record.starts_from is not None:
        initial = method(record.starts_from)
        tag = teachers_tag(initial.name, teacher_arch(run["teachers"]), tag_encoding(run["teachers"]) or None)
        inputs["init"] = STUDENT_RUN.format(**{**run, "method": initial.name, "teachers": tag,
                                              "alpha": alpha_tag(initial.alpha)}) + "/model.pt"
    return inputs


TEACHER_FILE_NAMES = ("outputs.h5", "similarity.h5")


def teacher_files(config, folds):
    """The teachers' outputs.h5 and similarity.h5 that the trained students of the grid read,
    sorted; `folds`: {dataset: fold names}."""
    return sorted({path for run in student_runs(config, folds)
                   for path in student_inputs(config, run).values()
                   if path.rsplit("/", 1)[-1] in TEACHER_FILE_NAMES})
