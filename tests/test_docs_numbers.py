"""The numbers in the README and docs/ come from files the project writes: the README's demo
table is docs/demo_tables.md (the demo's tables.md, copied by `make demo-docs`), docs/qgaf.md's
tables are the Q-GAF demo's (`make qgaf-docs`), and every measured time, rate or speed ratio is
in a table that benchmarks/docs_tables.py renders from a committed CSV of benchmarks/results/."""
import re
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import docs_tables  # noqa: E402

DEMO_TABLES = REPO / "docs" / "demo_tables.md"


def markdown_table(text, heading):
    """{first cell: [other cells]} of the first table after the line `heading`."""
    lines = text[text.index(heading + "\n"):].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def value(cell):
    """'82.50 ± 6.61 (3)' -> '82.50 ± 6.61': the number without its count of seeds."""
    return re.sub(r"\s*\(\d+\)$", "", cell)


def test_markdown_table_reads_rows_after_their_heading():
    text = "# x\n\n### a\n\nnote\n\n| | m |\n|---|---:|\n| r1 | 1 (3) |\n| r2 | 2 |\n\n### b\n\n| | m |\n|---|--|\n| r3 | 3 |\n"
    assert markdown_table(text, "### a") == {"r1": ["1 (3)"], "r2": ["2"]}
    assert markdown_table(text, "### b") == {"r3": ["3"]}
    assert value("82.50 ± 6.61 (3)") == "82.50 ± 6.61" and value("80.00") == "80.00"


def test_readme_demo_table_is_the_demo_tables_file():
    readme = markdown_table((REPO / "README.md").read_text(), "## The demo's results")
    tables = DEMO_TABLES.read_text()
    accuracy = markdown_table(tables, "### test accuracy")
    lab = markdown_table(tables, "### Compare with the lab")
    assert list(readme) == list(accuracy)            # every row, in the report's order
    for label, (ours, labs) in readme.items():
        assert ours == value(accuracy[label][0]), label
        assert labs == value(lab[label][0]), label


# A measured time, rate or speed ratio (not a shape such as 3 × 500), and a table header of them.
MEASURED = re.compile(
    r"(?<![\w.])\d[\d,]*(\.\d+)?\s?(ms|µs|s|min|h|hours|seconds|minutes|steps/s|series/s|windows/s|"
    r"samples/s|images/s|MB/s|GB/s|TFLOP/s)(?![\w/])"
    r"|(?<![\w.])\d+\.\d+\s?[×x](?!\w)")
MEASURED_HEADER = re.compile(r"(\bms\b|/s\b|\bseconds?\b|\bhours?\b|(?<!')\bs\b|×|\bGB\b|\bMB\b)")


def unmarked_measurements(text):
    """(line number, text) of each line outside marked tables and code blocks that states a
    measured time, rate or speed ratio, or heads a table of them."""
    found, fence, marked = [], False, False
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence = not fence
        elif line.startswith("<!-- table "):
            marked = True
        elif line.startswith("<!-- end table -->"):
            marked = False
        elif fence or marked:
            continue
        elif MEASURED.search(line):
            found.append((number, line))
        elif (line.startswith("|") and number < len(lines) and lines[number].startswith("|-")
              and MEASURED_HEADER.search(line)):
            found.append((number, line))
    return found


def test_the_rule_finds_measurements_outside_marked_tables():
    text = ("took 3 min 55 s\n| job | s/epoch |\n|---|---:|\n| a | 1 |\n3 × 500 windows, 14 classes\n"
            "| | the lab's number |\n|---|---:|\n"
            "<!-- table x.csv\na: a\n-->\n| a | ms |\n|---:|---:|\n| 1.5× | 2 ms |\n<!-- end table -->\n"
            "```\n12.5 s\n```\n2.4× faster; 48 steps/s\n")
    assert [number for number, _ in unmarked_measurements(text)] == [1, 2, 18]


def test_measured_numbers_are_only_in_tables_rendered_from_csvs():
    stray = [f"{document.relative_to(REPO)}:{number}: {line}"
             for document in docs_tables.documents() for number, line in unmarked_measurements(document.read_text())]
    assert not stray, "measured numbers outside a table rendered from benchmarks/results/:\n" + "\n".join(stray)


def test_marked_tables_are_their_csvs_rendered():
    for document in docs_tables.documents():
        text = document.read_text()
        assert docs_tables.rendered(text) == text, (
            f"{document.relative_to(REPO)}: a table differs from its CSV (python benchmarks/docs_tables.py)")


def test_the_renderer_formats_filters_and_aligns(tmp_path):
    (tmp_path / "r.csv").write_text("table,name,bytes,rate\nstage,read,1500000000,1234.5\n"
                                    "stage,write,,0.25\nchunk,x,1,2\n")
    spec = "r.csv\nwhere table=stage\nname: stage\nbytes: size | GB\nrate: per s | ,.1f\n"
    assert docs_tables.render(spec, tmp_path) == (
        "| stage | size | per s |\n|---|---:|---:|\n| read | 1.50 | 1,234.5 |\n| write | – | 0.2 |\n")
    text = f"before\n<!-- table {spec}-->\nstale\n<!-- end table -->\nafter\n"
    assert docs_tables.rendered(text, tmp_path).split("\n")[9] == "| read | 1.50 | 1,234.5 |"


def test_the_renderer_names_what_is_missing(tmp_path):
    (tmp_path / "r.csv").write_text("name,rate\nread,1\n")
    for spec, message in [("gone.csv\nname: n\n", "gone.csv: no such CSV"),
                          ("r.csv\nspeed: s\n", "r.csv: no column speed"),
                          ("r.csv\nwhere name=write\nname: n\n", "no row where"),
                          ("r.csv\nname n\n", "is not 'csv_column: header")]:
        with pytest.raises(docs_tables.TableSpecError, match=message):
            docs_tables.render(spec, tmp_path)


def test_dtype_numbers_are_the_dtype_demos_tables_files():
    """docs/configuration-guide.md's images.dtype comparison is the dtype demo's own tables.md,
    float16 and float32 images (docs/dtype_demo_tables.md, docs/dtype_demo_float32_tables.md,
    copied by `make dtype-docs`)."""
    guide = (REPO / "docs" / "configuration-guide.md").read_text()
    float16, float32 = (markdown_table((REPO / "docs" / name).read_text(), "### test accuracy")
                        for name in ("dtype_demo_tables.md", "dtype_demo_float32_tables.md"))
    compared = markdown_table(guide, "([float16](dtype_demo_tables.md), [float32](dtype_demo_float32_tables.md)):")
    assert list(compared) == ["GASF teacher"]
    for label, (half, single) in compared.items():
        assert (half, single) == (value(float16[label][0]), value(float32[label][0])), label


def test_qgaf_tables_are_the_qgaf_demos_tables_files():
    """docs/qgaf.md's two tables are the Q-GAF demo's own tables.md, exact and with 100 shots
    (docs/qgaf_demo_tables.md, docs/qgaf_demo_shots_tables.md, copied by `make qgaf-docs`)."""
    qgaf = (REPO / "docs" / "qgaf.md").read_text()
    exact, shots = (markdown_table((REPO / "docs" / name).read_text(), "### test accuracy")
                    for name in ("qgaf_demo_tables.md", "qgaf_demo_shots_tables.md"))
    demo = markdown_table(qgaf, "### Demo run (BasicMotions)")
    assert list(demo) == list(exact)                 # every row, in the report's order
    for label, (ours, *_) in demo.items():
        assert ours == value(exact[label][0]), label
    with_shots = markdown_table(qgaf, "### With measurement noise (100 shots)")
    assert with_shots and set(with_shots) <= set(shots)
    for label, (without, ours, *_) in with_shots.items():
        assert (without, ours) == (value(exact[label][0]), value(shots[label][0])), label


def test_the_dtype_demo_differs_only_in_how_the_images_are_stored():
    from gafkd.config import check_config_files

    float16 = check_config_files([REPO / "docs/dtype_demo.yaml"])
    float32 = check_config_files([REPO / "docs/dtype_demo.yaml", REPO / "docs/dtype_demo_float32.yaml"])
    assert (float16["images"]["dtype"], float32["images"]["dtype"]) == ("float16", "float32")
    float32["images"]["dtype"] = "float16"
    assert float32 == float16
    assert float16["images"]["size"] == 64 and float16["teachers"]["modalities"] == ["gaf"]


def test_lab_md_quotes_the_lab_numbers_of_the_config():
    """docs/lab.md's ranges of the lab's GENE-14 numbers are the min–max over teacher architectures
    of configs/gene14_w500.yaml's report.reference (to one decimal, as the lab wrote them)."""
    from decimal import ROUND_HALF_UP, Decimal

    import yaml

    def one_decimal(number):
        return Decimal(str(number)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    config = yaml.safe_load((REPO / "configs" / "gene14_w500.yaml").read_text())
    reference = {v["method"]: [mean for mean, _ in v["accuracy"].values()]
                 for v in config["report"]["reference"]["gene14_w500"]["values"]}
    line = next(line for line in (REPO / "docs" / "lab.md").read_text().splitlines()
                if line.startswith("| `gene14_w500.yaml` |"))
    labels = {"teacher-gaf": "GAF teachers", "kd-gaf": "one GAF teacher", "kd2": "two teachers at α = 0.3",
              "kd2-anneal": "+ annealing", "kd2-anneal-sp": "+ SP"}
    assert set(labels) == set(reference)
    for method, label in labels.items():
        low, high = one_decimal(min(reference[method])), one_decimal(max(reference[method]))
        assert f"{label} {low}–{high} %" in line, method
