"""Imported first by every job script (and loaded by common.smk): makes `import gafkd` load this
checkout's library, with or without `pip install` (e.g. in per-rule conda environments).

Snakemake appends the parent process's sys.path to a job's, so this checkout's src may already
be on sys.path behind an editable install of another checkout; it is moved to the front."""
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def use_this_checkout():
    """Put SRC first on sys.path and forget any gafkd modules imported from elsewhere."""
    while SRC in sys.path:
        sys.path.remove(SRC)
    sys.path.insert(0, SRC)
    for name in [n for n in sys.modules if n == "gafkd" or n.startswith("gafkd.")]:
        origin = getattr(sys.modules[name], "__file__", None)
        if origin is None or not Path(origin).resolve().is_relative_to(SRC):
            del sys.modules[name]


use_this_checkout()
