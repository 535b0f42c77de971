import logging

import pytest

from gafkd.logs import attempts_path, logged


def test_every_attempt_is_kept_with_a_header(tmp_path):
    log = tmp_path / "logs" / "teacher.log"
    with pytest.raises(RuntimeError):
        with logged(log):
            logging.getLogger("gafkd.test").info("first try")
            raise RuntimeError("killed half way")
    log.unlink()                                   # Snakemake deletes the log before a rerun
    with logged(log):
        logging.getLogger("gafkd.test").info("second try")
    history = attempts_path(log).read_text()
    assert attempts_path(log).name == "teacher.attempts.log"
    assert history.count("=== attempt") == 2
    first, second = history.split("=== attempt 2: started ")
    assert "=== attempt 1: started " in first and "first try" in first
    assert "RuntimeError: killed half way" in first
    assert "second try" in second and "first try" not in second
    current = log.read_text()
    assert current.startswith("=== attempt 2: started ") and "second try" in current
    assert "first try" not in current
