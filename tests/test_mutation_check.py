"""The mutation check (tests/mutation_check.py) stays runnable: every planted bug's snippet is
still in its file, once, and the tests meant to catch it exist."""
import pytest
from conftest import REPO
from mutation_check import MUTATIONS


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_snippet_occurs_once_and_its_tests_exist(mutation):
    assert (REPO / mutation.path).read_text().count(mutation.old) == 1, mutation.path
    assert mutation.new != mutation.old
    for test in mutation.tests:
        path, _, name = test.partition("::")
        assert (REPO / path).is_file(), test
        if name:
            assert f"def {name.split('[')[0]}(" in (REPO / path).read_text(), test
