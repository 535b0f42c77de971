"""The grid's names, shared by every stage: the folders of teacher and student runs, the teachers
tag of a student's folder, the image cache's variant, the signal and image modalities. Pure
string functions of a run's names, no config."""
import re

from gafkd.archs import ARCH_REGEX
from gafkd.encodings import ENCODING_REGEX
from gafkd.errors import ConfigError
from gafkd.methods import method

SIGNAL = "sig"          # the signal teachers' folder; an image teacher's is its encoding
MODALITY_REGEX = rf"{SIGNAL}|{ENCODING_REGEX}"
# teachers.modalities: 'gaf' stands for the image teachers of every images.methods entry.
IMAGE_ROLE = "gaf"


def is_image_modality(modality):
    """Whether a teacher folder's modality is an image encoding (else the signal)."""
    return modality != SIGNAL


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


# The image cache's name: encoding, size, then what else changes it, where not the default.
IMAGE_VARIANT_REGEX = r"(?:-clean)?(?:-unscaled|-standard)?(?:-shots[1-9]\d*(?:-seed\d+)?)?(?:-float32)?"


def image_variant(variant):
    """build_images' pi_recipe, qgaf and dtype from the variant part of an image cache's name."""
    shots = re.search(r"-shots(\d+)(?:-seed(\d+))?", variant)
    scaling = "none" if "-unscaled" in variant else "standard" if "-standard" in variant else "minmax"
    return {"pi_recipe": "clean" if "-clean" in variant else "lab",
            "qgaf": {"scaling": scaling, "shots": int(shots[1]) if shots else None,
                     "seed": int(shots[2] or 0) if shots else 0},
            "dtype": "float32" if "-float32" in variant else "float16"}
