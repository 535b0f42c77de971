import hashlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).parent))


def tree_digest(root):
    """{relative path: sha256} of every file under root."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def basicmotions_fold(root, images_size=None):
    """BasicMotions' windows.h5 under root (the published split; validation windows drawn at random
    from the 40 training recordings, so training windows are not the first rows) and, with
    `images_size`, its GASF image cache: {'root', 'windows'[, 'images']}."""
    from gafkd.windows import build_windows

    split = {"kind": "predefined", "val_fraction": 0.25, "seed": 0}
    build_windows("basicmotions", {"source": "basicmotions", "split": split},
                  root / "windows.h5", root / "summary.md")
    files = {"root": root, "windows": root / "windows.h5"}
    if images_size:
        from gafkd.images import build_images

        build_images(root / "windows.h5", root / "images.h5", size=images_size)
        files["images"] = root / "images.h5"
    return files


@pytest.fixture
def gene_folder(tmp_path):
    from rawfiles import make_gene_folder
    folder = tmp_path / "Window-size-50"
    return folder, make_gene_folder(folder)


@pytest.fixture
def pamap2_folder(tmp_path):
    from rawfiles import make_pamap2_folder
    folder = tmp_path / "Protocol"
    return folder, make_pamap2_folder(folder)
