"""Small rooms: no module in src/ over 400 lines, no function over 70 (about 60, with room for a
docstring)."""
import ast

from conftest import REPO

SRC = REPO / "src" / "gafkd"
MODULE_LINES, FUNCTION_LINES = 400, 70


def long_functions(text, limit):
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit]


def test_the_function_measure_counts_lines():
    text = "def f():\n" + "    x = 1\n" * 5 + "\n\ndef g():\n    pass\n"
    assert long_functions(text, 5) == [("f", 6)]


def test_no_module_or_function_is_too_long():
    long_modules = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
                    if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert long_modules == {}
    found = {f"{p.relative_to(SRC)}:{name}": n for p in SRC.rglob("*.py")
             for name, n in long_functions(p.read_text(), FUNCTION_LINES)}
    assert found == {}
