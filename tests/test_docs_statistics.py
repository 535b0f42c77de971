"""docs/statistics.md: every python example runs as written, in order, in one namespace."""
import re

from conftest import REPO

DOC = REPO / "docs" / "statistics.md"


def examples():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_examples_run_as_written(capsys):
    blocks = examples()
    assert len(blocks) >= 7
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC}:example {i + 1}", "exec"), namespace)
    assert "wilcoxon_p" in namespace and namespace["row"]["n_pairs"] == 9
