"""Two experiments in one directory: each keeps its own tables, figures and report
(results/reports/<report.name>/), and running one again leaves the other's untouched."""
import yaml
from rawfiles import make_gene_folder
from test_workflow import snakemake

TINY = {"training": {"epochs": 1, "batch_size": 8},
        "images": {"methods": ["gasf"], "size": 16},
        "teachers": {"modalities": ["gaf", "sig"], "archs": ["wrn16-1"], "seeds": [1]},
        "students": {"arch": "wrn16-1", "methods": ["scratch", "kd-gaf", "kd2"], "alphas": [0.5], "seeds": [1]},
        "devices": {"threads": 1}}


def experiment(tmp_path, name, datasets):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets, **TINY}))
    return path


def run_with_report(workdir, configfile, name):
    run = snakemake(workdir, configfile=configfile)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    html = workdir / f"results/reports/{name}/report.html"
    run = snakemake(workdir, "--report", str(html), configfile=configfile)
    assert run.returncode == 0, run.stderr[-3000:]
    return html


def contents(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_two_experiments_keep_their_own_reports(tmp_path):
    gene = tmp_path / "raw" / "Window-size-50"
    make_gene_folder(gene, per_class=3)
    demo = experiment(tmp_path, "motions", {"basicmotions": {"source": "basicmotions"}})
    lab = experiment(tmp_path, "gene", {"gene": {
        "source": "geneactiv_mat", "raw": str(gene), "window": 50,
        "class_map": {1: "walk", 2: "rest", 3: "run"},
        "split": {"kind": "holdout", "val_fraction": 0.2, "test_fraction": 0.2}}})
    work = tmp_path / "work"
    first_html = run_with_report(work, demo, "motions")
    first = contents(work / "results/reports/motions")
    assert "basicmotions" in first[first_html.relative_to(work / "results/reports/motions")].decode(errors="replace")
    second_html = run_with_report(work, lab, "gene")
    assert contents(work / "results/reports/motions") == first
    tables = (work / "results/reports/gene/tables.md").read_text()
    assert "gene" in tables and "basicmotions" not in tables
    assert "motions" in first_html.read_text(errors="replace") and "gene" in second_html.read_text(errors="replace")
    second = contents(work / "results/reports/gene")
    # the first experiment again: its runs are done, only its own report is rewritten
    again = snakemake(work, "-n", configfile=demo)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    run_with_report(work, demo, "motions")
    assert contents(work / "results/reports/gene") == second
