"""src/gafkd has no import cycle, and its imports only go down the stages of the DAG, counting the
imports inside functions too: a cycle or an upward import that only a deferred import keeps from
failing today breaks the day someone moves that import to the top."""
import ast

import pytest
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


# The stage subpackages, lowest first: a stage imports itself, the stages below it and the shared
# top-level modules (gafkd.config, gafkd.errors, gafkd.grid, ...), never a stage above it.
STAGES = ("data", "images", "train", "distill", "report")

# The shared top-level modules that import a stage package, and why they must. Every other shared
# module imports shared modules only.
SHARED_EXCEPTIONS = {
    ("gafkd.config", "data"):
        "the config check resolves each dataset with the data stage's own defaults and checks "
        "(gafkd.data.datasets: a source's options, its reader's channel names and protocol, the "
        "download) and names a dataset's folds from the subjects in its raw folder (readers, "
        "splits); nothing in gafkd.data imports the config",
    ("gafkd.resources", "data"):
        "resources sizes each stage's jobs for the scheduler and plan: a PAMAP2 raw folder's "
        "windows come from its reader (gafkd.data.readers.pamap2)",
    ("gafkd.resources", "distill"):
        "resources sizes each stage's jobs: a similarity cache's bytes and the teachers' passes "
        "come from the cache's own layout (gafkd.distill.cache_layout)",
}


def stage_of(module):
    """The stage a gafkd module belongs to, or None for the shared top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def reachable(graph, module):
    """Every gafkd module `module` imports, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def upward_imports(graph, exceptions=()):
    """(importer, imported) pairs against the direction: a stage module importing a higher stage,
    or a shared module importing a stage package (bar `exceptions`: (shared module, stage))."""
    wrong = set()
    for module, imported in graph.items():
        own = stage_of(module)
        for other in imported:
            theirs = stage_of(other)
            if theirs is None:
                continue
            if own is None and (module, theirs) not in exceptions:
                wrong.add((module, other))
            elif own is not None and STAGES.index(theirs) > STAGES.index(own):
                wrong.add((module, other))
    return wrong


def test_the_direction_check_finds_an_upward_import():
    graph = {"gafkd.data.windows": {"gafkd.train.engine"}, "gafkd.train.engine": {"gafkd.errors"},
             "gafkd.errors": set(), "gafkd.grid": {"gafkd.distill.reuse"}, "gafkd.distill.reuse": set()}
    assert upward_imports(graph) == {("gafkd.data.windows", "gafkd.train.engine"),
                                     ("gafkd.grid", "gafkd.distill.reuse")}
    assert upward_imports(graph, {("gafkd.grid", "distill")}) == {("gafkd.data.windows", "gafkd.train.engine")}


def test_the_stage_packages_are_the_dag():
    assert sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists()) == sorted(STAGES)


def test_imports_go_down_the_stages():
    """A stage imports only itself, lower stages and the shared modules; a shared module imports
    no stage package but for the SHARED_EXCEPTIONS."""
    assert upward_imports(import_graph(), SHARED_EXCEPTIONS) == set()


def test_no_stage_reaches_a_higher_stage_through_a_shared_module():
    """Through the exceptions too: a stage may not import gafkd.resources, say, which reaches
    gafkd.distill."""
    graph = import_graph()
    wrong = {}
    for module in graph:
        own = stage_of(module)
        if own is not None:
            allowed = {None, *STAGES[:STAGES.index(own) + 1]}
            higher = sorted({stage_of(m) for m in reachable(graph, module)} - allowed)
            if higher:
                wrong[module] = higher
    assert wrong == {}


def test_every_exception_is_still_needed():
    graph = import_graph()
    used = {(module, stage_of(other)) for module, imported in graph.items() if stage_of(module) is None
            for other in imported if stage_of(other) is not None}
    assert set(SHARED_EXCEPTIONS) <= used, sorted(set(SHARED_EXCEPTIONS) - used)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_package_says_what_it_owns_and_loads_nothing(stage):
    """Its __init__ is a docstring (what the stage owns, what it may import) and no import, so that
    importing one module of a stage loads none of the others."""
    tree = ast.parse((SRC / stage / "__init__.py").read_text())
    assert ast.get_docstring(tree) and "May import" in ast.get_docstring(tree)
    assert [type(node).__name__ for node in tree.body] == ["Expr"]
