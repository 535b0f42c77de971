"""Plant known bugs in a copy of this checkout, one at a time, and run the tests meant to catch
each; print which are caught and which survive.

usage: .venv/bin/python tests/mutation_check.py [--list] [--keep] [--no-baseline] [NAME ...]

The copy holds the files git knows of (tracked, and untracked ones that are not ignored), as
they are in the working tree; the checkout itself is never modified. Each mutation replaces
one exact snippet, which must occur exactly once in its file: when the code changes under a
snippet, the check stops before running anything and names the mutation to update. First the
tests of every selected mutation run on the unmutated copy (they must pass), then each mutation
runs its tests with `python -m pytest -x -q`. NAME selects mutations whose name contains it.

Exit status: 0 when every mutation is caught, 1 when one survives, 2 when the check cannot run.
Not part of the default test suite (pytest collects test_*.py only).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str           # relative to the repository root
    old: str            # exact snippet, once in the file
    new: str
    tests: tuple        # pytest arguments: test files or node ids


ENGINE, METRICS, PACKED = "src/gafkd/train/engine.py", "src/gafkd/train/metrics.py", "src/gafkd/train/packed.py"
RUN_OUTPUT = "src/gafkd/train/run_output.py"
STUDENTS, PAMAP2 = "src/gafkd/distill/students.py", "src/gafkd/data/readers/pamap2_format.py"
KD, TWO_TEACHERS = "src/gafkd/distill/losses/kd.py", "src/gafkd/distill/losses/multi_teacher.py"
CHECKPOINT = ("tests/test_checkpoint_choice.py",)
SIMILARITY = "src/gafkd/distill/similarity_cache.py"
GRAPHS = ("tests/test_graphs.py::test_a_graphed_run_is_the_eager_run_bit_for_bit",)
SIMILARITY_TESTS = ("tests/test_similarity_cache.py::test_cached_blocks_are_the_teachers_inner_products",)

MUTATIONS = [
    # best-validation checkpoint
    Mutation("validation evaluated on the test split", ENGINE,
             "vals = evaluate(job.model, job.data, job.data.val, job.settings, job.device)",
             "vals = evaluate(job.model, job.data, job.data.test, job.settings, job.device)", CHECKPOINT),
    Mutation("best weights kept without a copy", PACKED,
             "return tensor.detach().clone(memory_format=torch.contiguous_format)",
             "return tensor.detach()", CHECKPOINT),
    Mutation("best epoch chosen on test accuracy", ENGINE,
             'if state.best is None or (val["accuracy"], -val["loss"]) > (',
             'if state.best is None or (test["accuracy"], -test["loss"]) > (', CHECKPOINT),
    Mutation("best epoch number off by one", ENGINE,
             'state.best = {"epoch": epoch + 1, "val_accuracy"',
             'state.best = {"epoch": epoch, "val_accuracy"', CHECKPOINT),
    Mutation("test metrics of the last epoch reported as best", RUN_OUTPUT,
             '"test_at_best_val": progress.best["test"],', '"test_at_best_val": test,', CHECKPOINT),
    # metrics
    Mutation("micro-F1 instead of macro-F1", METRICS,
             "return float(f1[present].mean()) if present.any() else 0.0",
             "return float(tp.sum() / matrix.sum()) if present.any() else 0.0",
             ("tests/test_metrics.py",)),
    Mutation("macro-F1 over the true classes only", METRICS,
             "present = (predicted + actual) > 0", "present = actual > 0", ("tests/test_metrics.py",)),
    Mutation("confusion matrix transposed", METRICS,
             "np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)",
             "np.add.at(matrix, (np.asarray(y_pred), np.asarray(y_true)), 1)",
             ("tests/test_metrics.py",)),
    # students and losses
    Mutation("teacher logits of the first n windows, not the training ones", STUDENTS,
             "torch.from_numpy(logits[train_mask])",
             "torch.from_numpy(logits[:int(train_mask.sum())])", ("tests/test_teacher_logits.py",)),
    Mutation("GAF and signal teacher logits swapped", STUDENTS,
             'self._cached("gaf", index), self._cached("sig", index)',
             'self._cached("sig", index), self._cached("gaf", index)', ("tests/test_teacher_logits.py",)),
    Mutation("cross-entropy on the standardised student logits", TWO_TEACHERS,
             "cross_entropy(maybe_standardized(student_logits, ce_standardized), targets)",
             "cross_entropy(student, targets)", ("tests/test_losses.py",)),
    Mutation("KD term subtracted", TWO_TEACHERS,
             "return (1 - lam) * ce + kd_weight * kl",
             "return (1 - lam) * ce - kd_weight * kl", ("tests/test_losses.py",)),
    Mutation("KL direction reversed", KD,
             "F.kl_div(log_student, log_teacher, reduction=\"none\", log_target=True)",
             "F.kl_div(log_teacher, log_student, reduction=\"none\", log_target=True)",
             ("tests/test_losses.py",)),
    # PAMAP2 columns
    Mutation("PAMAP2 ±16 g and ±6 g columns swapped", PAMAP2,
             'for sensor in ("acc16", "acc6", "gyro", "mag"):',
             'for sensor in ("acc6", "acc16", "gyro", "mag"):', ("tests/test_pamap2.py",)),
    Mutation("PAMAP2 acc16 set takes the ±6 g columns", PAMAP2,
             '"acc16": [n for n in COLUMNS if "_acc16_" in n],',
             '"acc16": [n for n in COLUMNS if "_acc6_" in n],', ("tests/test_pamap2.py",)),
    Mutation("PAMAP2 hand_acc16 set one column early", PAMAP2,
             '"hand_acc16": ["hand_acc16_x", "hand_acc16_y", "hand_acc16_z"],',
             '"hand_acc16": ["hand_temp", "hand_acc16_x", "hand_acc16_y"],', ("tests/test_pamap2.py",)),
    Mutation("PAMAP2 imu_acc_gyro set takes the magnetometer", PAMAP2,
             'if "_acc16_" in n or "_gyro_" in n]', 'if "_acc16_" in n or "_mag_" in n]',
             ("tests/test_pamap2.py",)),
    # splits, resume, GAF images
    Mutation("LOSO validation subjects drawn from all subjects", "src/gafkd/data/splits.py",
             "rest = subjects[subjects != held_out]", "rest = subjects", ("tests/test_splits.py",)),
    Mutation("standardisation std over every window, test included", "src/gafkd/data/splits.py",
             "std = stds[train].mean(axis=0)", "std = stds.mean(axis=0)", ("tests/test_splits.py",)),
    Mutation("resumed epoch draws a new batch order", ENGINE,
             "generator.set_state(state.epoch_generator_state)", "generator.get_state()",
             ("tests/test_engine.py::test_killed_run_resumes_to_identical_metrics",)),
    Mutation("GASF with cos(φi − φj)", "src/gafkd/images/gramian.py",
             "row[j] = cos[i] * cos[j] - sin[i] * sin[j]", "row[j] = cos[i] * cos[j] + sin[i] * sin[j]",
             ("tests/test_images.py::test_gaf_matches_pyts",)),
    # teacher similarity caches
    Mutation("similarity cache over the first n windows, not the training ones", SIMILARITY,
             "rows = np.flatnonzero(read_windows(windows_h5, load_X=False).folds[fold].split == TRAIN)",
             "rows = np.arange((read_windows(windows_h5, load_X=False).folds[fold].split == TRAIN).sum())",
             SIMILARITY_TESTS),
    Mutation("similarity cache mirror block not transposed", SIMILARITY,
             "row:row + len(left)] = product.T", "row:row + len(left)] = product", SIMILARITY_TESTS),
    Mutation("similarity block gathered by rows only", SIMILARITY,
             'blocks.append(rows.index_select(1, index) if form == "gram"',
             'blocks.append(rows[:, :len(index)] if form == "gram"', SIMILARITY_TESTS),
    # MTF as pyts computes it
    Mutation("MTF keeps repeated quantile edges", "src/gafkd/images/mtf.py",
             "edges = np.where(keep, edges, np.inf)", "edges = edges",
             ("tests/test_images.py::test_mtf_bins_drop_repeated_quantile_edges_as_pyts_does",)),
    Mutation("MTF block mean over one row of the block", "src/gafkd/images/mtf.py",
             "for r in range(bounds[j], bounds[j + 1]):", "for r in range(bounds[j], bounds[j] + 1):",
             ("tests/test_images.py::test_mtf_is_pyts_value_for_value",)),
    # packs narrowed to the job's device memory
    Mutation("pack width: a reserve equal to the budget does not fit", "src/gafkd/train/memory.py",
             "return training_reserve(narrower, width, input_shape, batch_size, device, eval_batch_size) <= budget",
             "return training_reserve(narrower, width, input_shape, batch_size, device, eval_batch_size) < budget",
             ("tests/test_memory.py::test_a_pack_trains_as_wide_as_the_jobs_device_memory_holds",)),
    Mutation("narrower packs drop the last runs", "src/gafkd/train/memory.py",
             "for start in range(0, len(runs), width):", "for start in range(0, len(runs) - 1, width):",
             ("tests/test_packed.py::test_a_pack_wider_than_the_device_holds_trains_as_narrower_packs_with_the_same_results",)),
    # CUDA graphs of the training step (through the CPU stand-in)
    Mutation("graph replays a stale batch index", "src/gafkd/train/graphs.py",
             "        self.index.copy_(index)\n", "", GRAPHS),
    Mutation("graph not captured again at a new learning rate", "src/gafkd/train/graphs.py",
             "if self.graph is None or lr != self.lr:", "if self.graph is None:", GRAPHS),
    Mutation("the short last batch replays the full batch's graph", "src/gafkd/train/graphs.py",
             "if index.shape != self.index.shape:", "if index.shape[1] > self.index.shape[1]:", GRAPHS),
    Mutation("network cost without the shortcut convolutions", "src/gafkd/archs.py",
             "conv(in_planes, out_planes, spatial, stride, 1)              # the shortcut", "pass",
             ("tests/test_models.py",)),
    Mutation("network cost with unstrided group outputs", "src/gafkd/archs.py",
             "            spatial = out\n", "", ("tests/test_models.py",)),
    Mutation("a host-streamed similarity cache is graphed", STUDENTS,
             "return all(cache.on_device for cache in self.caches.values())", "return True",
             ("tests/test_graphs.py",)),
]


def checkout_files():
    """The files git knows of in the working tree: tracked and untracked-but-not-ignored."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    return sorted({name for name in listed.decode().split("\0") if name and (REPO / name).is_file()})


def copy_checkout(root):
    for name in checkout_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


def out_of_sync(root, mutations):
    """Lines naming each mutation whose snippet is not exactly once in its file."""
    problems = []
    for m in mutations:
        path = root / m.path
        count = path.read_text().count(m.old) if path.is_file() else 0
        if count != 1:
            problems.append(f"{m.name!r}: {m.path} holds its snippet {count} times, not once: "
                            f"{m.old!r}")
    return problems


def run_tests(root, tests, timeout):
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 *tests], cwd=root, env=env, capture_output=True, text=True,
                                timeout=timeout)
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired:
        code, output = None, f"timed out after {timeout} s"
    return code, output, time.monotonic() - started


def first_failure(output):
    """The test id of the first FAILED or ERROR line of pytest's summary, or ''."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split()[1].split("/")[-1]
    return ""


def verdict(code):
    if code == 0:
        return "SURVIVED"
    if code == 1:
        return "caught"
    return "error" if code is not None else "timeout"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run the mutations whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per pytest run")
    args = parser.parse_args(argv)
    mutations = [m for m in MUTATIONS if not args.names or any(n in m.name for n in args.names)]
    if args.list:
        for m in mutations:
            print(f"{m.name}  [{m.path}; {' '.join(m.tests)}]")
        return 0
    if not mutations:
        print("no mutation matches", args.names, file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="gafkd-mutations-")) / "gafkd"
    try:
        copy_checkout(root)
        problems = out_of_sync(root, mutations)
        if problems:
            print("mutations out of sync with the code (update tests/mutation_check.py):",
                  *problems, sep="\n  ", file=sys.stderr)
            return 2
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for m in mutations for t in m.tests))
            code, output, seconds = run_tests(root, tests, args.timeout)
            if code != 0:
                print(f"the tests fail without any mutation ({seconds:.0f} s):\n{output[-3000:]}",
                      file=sys.stderr)
                return 2
            print(f"baseline: {len(tests)} test files pass unmutated ({seconds:.0f} s)", file=sys.stderr)
        rows = []
        for m in mutations:
            path = root / m.path
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            try:
                code, output, seconds = run_tests(root, m.tests, args.timeout)
            finally:
                path.write_text(original)
            rows.append((m, verdict(code), first_failure(output) if code == 1 else ""))
            print(f"{verdict(code):8s} {seconds:6.0f} s  {m.name}", file=sys.stderr)
            if code not in (0, 1):
                print(output[-2000:], file=sys.stderr)
        print("| mutation | file | result | first failing test |")
        print("|---|---|---|---|")
        for m, result, failing in rows:
            print(f"| {m.name} | `{m.path.removeprefix('src/gafkd/')}` | {result} | {failing} |")
        survived = [m.name for m, result, _ in rows if result == "SURVIVED"]
        print(f"\n{len(rows) - len(survived)} of {len(rows)} caught"
              + (f"; surviving: {', '.join(survived)}" if survived else ""))
        return 1 if survived else 0
    finally:
        if args.keep:
            print(f"copy kept at {root}", file=sys.stderr)
        else:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
