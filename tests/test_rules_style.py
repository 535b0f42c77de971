"""The Snakefile and the rule files: formatted as snakefmt writes them, and nothing for
`snakemake --lint` to say."""
import subprocess
import sys

from conftest import REPO

# What `snakemake --lint` prints when it has no lint; each lint is a warning ("Lints for rule
# ...", "Lints for snakefile ...") and makes it exit with 1.
CLEAN = "Congratulations, your workflow is in a good condition!"


def test_snakefmt_would_change_nothing():
    run = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", "Snakefile", "workflow/rules"],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]


def test_lint_of_the_default_config_says_nothing_else():
    """Clean: exit status 0 and the one line above as the whole output, so that no lint, warning
    or error passes."""
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", "Snakefile", "--lint"],
                         cwd=REPO, capture_output=True, text=True)
    output = (run.stdout + run.stderr).strip()
    assert run.returncode == 0 and output == CLEAN, output[-5000:]
