"""A run's files as its job sees them: the settings, inputs, outputs and resume checkpoint of
each run of a job, a pack's members named m<k>_<name> among its rule's files."""
from dataclasses import dataclass
from pathlib import Path

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
