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
