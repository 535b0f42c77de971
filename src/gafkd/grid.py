"""The experiment grid of a validated config: every teacher and student run, its result folder,
its settings (what changes its result) and its inputs. Torch-free: the workflow, the benchmarks
and the tests expand the grid with these functions, so it is expanded in one place."""

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from gafkd.archs import ARCH_REGEX
from gafkd.encodings import ENCODING_REGEX, IMAGE_METHODS, encoding_label, encoding_order, encoding_parts  # noqa: F401
from gafkd.encodings import QGAF_DEFAULTS, QGAF_METHODS, qgaf_identity
from gafkd.errors import ConfigError
from gafkd.methods import alpha_tag, method  # noqa: F401  (alpha_tag: the grid's spelling of α)
from gafkd.same_run import same_run_teacher

SIGNAL = "sig"          # the signal teachers' folder; an image teacher's is its encoding
MODALITY_REGEX = rf"{SIGNAL}|{ENCODING_REGEX}"
# teachers.modalities: 'gaf' stands for the image teachers of every images.methods entry.
IMAGE_ROLE = "gaf"


def is_image_modality(modality):
    """Whether a teacher folder's modality is an image encoding (else the signal)."""
    return modality != SIGNAL


def image_encodings(config):
    """The encodings of images.methods, in the config's order."""
    return list(config["images"]["methods"])


def paired_encodings(config):
    """The image teachers' encodings that two-teacher students pair with the signal teacher:
    students.paired_images, default every images.methods entry."""
    chosen = config["students"].get("paired_images")
    return image_encodings(config) if chosen is None else list(chosen)


TEACHER_RUN = "results/{dataset}/{fold}/teachers/{modality}/{arch}/seed{seed}"
STUDENT_RUN = "results/{dataset}/{fold}/students/{arch}/{method}/{teachers}/alpha{alpha}/seed{seed}"
# A teachers tag: 'none', '<encoding>-<arch>', 'sig-<arch>' or '<encoding>-<arch>+sig-<arch>'
# ('+' also joins a stack's encodings: the fixed shape of the tag keeps it unambiguous).
_IMAGE_TEACHER = rf"(?P<image>{ENCODING_REGEX})-(?P<image_arch>{ARCH_REGEX})"
_SIGNAL_TEACHER = rf"{SIGNAL}-(?P<sig_arch>{ARCH_REGEX})"
TEACHERS_REGEX = (rf"none|(?:{ENCODING_REGEX})-{ARCH_REGEX}|{SIGNAL}-{ARCH_REGEX}"
                  rf"|(?:{ENCODING_REGEX})-{ARCH_REGEX}\+{SIGNAL}-{ARCH_REGEX}")
# Files of the signal teacher run that a scratch student is (gafkd.distill.reuse), as the student's inputs.
SAME_RUN_FILES = {"same_run_model": "model.pt", "same_run_metrics": "metrics.json",
                  "same_run_history": "history.csv", "same_run_predictions": "predictions.npz"}


def teachers_tag(name, teacher_arch, encoding=None):
    """'none', 'gasf-wrn16-3', 'sig-wrn16-3' or 'gasf-wrn16-3+sig-wrn16-3': the teachers of
    method `name`, its image teacher of `encoding`."""
    roles = method(name).teachers
    if IMAGE_ROLE in roles and encoding is None:
        raise ConfigError(f"method '{name}' learns from an image teacher: name its encoding")
    return "+".join(f"{encoding if role == IMAGE_ROLE else SIGNAL}-{teacher_arch}" for role in roles) or "none"


def parse_teachers_tag(name, tag):
    """{role: (modality, arch)} of a teachers tag, checked against the method: the image
    teacher under role 'gaf' with its encoding as modality, the signal teacher under 'sig'."""
    match = None
    for form in (_IMAGE_TEACHER, _SIGNAL_TEACHER, rf"{_IMAGE_TEACHER}\+{_SIGNAL_TEACHER}"):
        match = match or re.fullmatch(form, tag)
    if match is None and tag != "none":
        raise ConfigError(f"teachers '{tag}' is not none, <encoding>-<arch>, sig-<arch> or "
                          f"<encoding>-<arch>+sig-<arch>")
    found = {} if match is None else match.groupdict()
    parsed = {}
    if found.get("image"):
        parsed[IMAGE_ROLE] = (found["image"], found["image_arch"])
    if found.get("sig_arch"):
        parsed[SIGNAL] = (SIGNAL, found["sig_arch"])
    roles = method(name).teachers
    if tuple(parsed) != roles:
        raise ConfigError(f"method '{name}' takes teachers {roles or 'none'}, not '{tag}'")
    return parsed


def teacher_arch(tag):
    """The teachers' architecture of a teachers tag ('' for none)."""
    match = re.search(rf"{ARCH_REGEX}$", tag)     # both teachers of a pair share one
    return match.group(0) if match and tag != "none" else ""


def tag_encoding(tag):
    """The image teacher's encoding of a teachers tag ('' for none or the signal teacher alone)."""
    match = re.match(rf"({ENCODING_REGEX})-", tag)
    return match.group(1) if match else ""


def check_alpha(name, alpha):
    fixed = method(name).alpha
    if fixed is not None and float(alpha) != fixed:
        raise ConfigError(f"method '{name}' has α = {fixed:g}, not {alpha}")
    if not 0 <= float(alpha) <= 1:
        raise ConfigError(f"α must be within [0, 1], got {alpha}")


def canonical(value):
    """A copy with sorted keys: the order of keys in a config file must not rerun anything."""
    return json.loads(json.dumps(value, sort_keys=True))


# The image cache's name: encoding, size, then what else changes it, where not the default.
IMAGE_VARIANT_REGEX = r"(?:-clean)?(?:-unscaled|-standard)?(?:-shots[1-9]\d*(?:-seed\d+)?)?(?:-float32)?"


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


def image_variant(variant):
    """build_images' pi_recipe, qgaf and dtype from the variant part of an image cache's name."""
    shots = re.search(r"-shots(\d+)(?:-seed(\d+))?", variant)
    scaling = "none" if "-unscaled" in variant else "standard" if "-standard" in variant else "minmax"
    return {"pi_recipe": "clean" if "-clean" in variant else "lab",
            "qgaf": {"scaling": scaling, "shots": int(shots[1]) if shots else None,
                     "seed": int(shots[2] or 0) if shots else 0},
            "dtype": "float32" if "-float32" in variant else "float16"}


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


# A pack's member k: its rule's input and output names carry the prefix m<k>_.
def member_name(k, name):
    return f"m{k}_{name}"


def member_files(files, k):
    """{name: path} of member k among a pack rule's named files."""
    prefix = member_name(k, "")
    return {name[len(prefix):]: path for name, path in files.items() if name.startswith(prefix)}


RUN_FILE_NAMES = {"model": "model.pt", "metrics": "metrics.json", "history": "history.csv",
                  "predictions": "predictions.npz"}


@dataclass
class RunFiles:
    """A run as its job sees it: its settings (student_settings, teacher_settings), input files
    (student_inputs', teacher_inputs' names), output files and resume checkpoint."""
    settings: dict
    inputs: dict
    outputs: dict
    resume_path: Path


def pack_run_files(inputs, settings, outputs):
    """The RunFiles of a pack's members from its rule's files (member k's named as member_files
    gives them) and settings (one per member); each resumes from resume.pt beside its model.pt."""
    return [RunFiles(member, member_files(inputs, k), member_files(outputs, k),
                     Path(member_files(outputs, k)["model"]).with_name("resume.pt"))
            for k, member in enumerate(settings)]


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
