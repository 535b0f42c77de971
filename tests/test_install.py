"""The Makefile's install: which torch it asks pip for, and that a different one is installed
when TORCH or CUDA changes (pip and python faked: nothing is downloaded)."""
import shutil
import subprocess

import pytest
from conftest import REPO

FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
"""


@pytest.fixture
def checkout(tmp_path):
    """A copy of what the install reads, with a .venv whose pip and python log their arguments."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "envs").mkdir()
    shutil.copy(REPO / "envs" / "pip-constraints.txt", tmp_path / "envs")
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("pip", "python"):
        (bin_dir / tool).write_text(FAKE_TOOL.format(log=log))
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def install(checkout, *variables):
    """The torch requirements pip was asked for by one `make install`."""
    log = checkout / "calls.log"
    log.unlink(missing_ok=True)
    run = subprocess.run(["make", "-s", "install", *variables], cwd=checkout, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return [call.split(" ", 3)[3] for call in calls if call.startswith("pip install --quiet torch")]


def test_changing_torch_reinstalls_it(checkout):
    assert install(checkout) == ["torch==2.13.0"]
    assert install(checkout) == []                                   # nothing changed
    assert install(checkout, "TORCH=torch==2.12.0") == ["torch==2.12.0"]
    assert install(checkout, "TORCH=torch==2.12.0") == []


def test_cuda_asks_for_the_cuda_build_by_its_local_version(checkout):
    """`torch==2.13.0` is satisfied by an installed 2.13.0+cpu; `+cu128` is not."""
    install(checkout)
    assert install(checkout, "CUDA=cu128") == [
        "torch==2.13.0+cu128 --extra-index-url https://download.pytorch.org/whl/cu128"]


def test_the_install_reports_the_devices(checkout):
    install(checkout)
    assert "python -m gafkd.train.devices" in (checkout / "calls.log").read_text()
