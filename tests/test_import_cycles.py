"""src/gafkd has no import cycle, counting the imports inside functions too: a cycle that only a
deferred import keeps from failing today breaks the day someone moves that import to the top."""
import ast

from conftest import REPO

SRC = REPO / "src" / "gafkd"


def module_name(path):
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path, modules):
    """The gafkd modules `path` imports anywhere in its code (`from gafkd.x import y` counts as
    gafkd.x, and as gafkd.x.y where that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules


def import_graph():
    paths = {module_name(p): p for p in SRC.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def cycles(graph):
    """Every elementary cycle's smallest rotation, by depth-first search from each module."""
    found = set()

    def visit(node, path):
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycle = path[path.index(nxt):]
                start = cycle.index(min(cycle))
                found.add(tuple(cycle[start:] + cycle[:start]))
            else:
                visit(nxt, path + [nxt])

    for node in sorted(graph):
        visit(node, [node])
    return found


def test_the_search_finds_a_cycle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def test_the_graph_sees_deferred_imports():
    graph = import_graph()
    assert "gafkd.data.windows" in graph["gafkd.distill.reuse"]          # imported inside a function
    assert "gafkd.data.splits" in graph["gafkd.config"]


def test_src_has_no_import_cycle():
    assert cycles(import_graph()) == set()
