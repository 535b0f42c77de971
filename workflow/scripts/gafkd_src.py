"""Imported first by every job script: puts this checkout's gafkd library on sys.path, so jobs
run the same code with or without `pip install` (e.g. in per-rule conda environments)."""
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
