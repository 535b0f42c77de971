"""The README's demo table is the demo's own: each row's numbers are those of docs/demo_tables.md,
the tables.md the demo writes (results/reports/demo/tables.md), copied by `make demo-docs`."""
import re

from conftest import REPO

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
