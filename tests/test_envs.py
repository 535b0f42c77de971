"""The conda environments (envs/*.yaml) against what the rules import and what the tests run with.

Imports are read from the source (ast), following every gafkd module a script imports, lazy
imports inside functions included; an import inside a `try` that catches ImportError is optional.
"""
import ast
import re
import sys
import tomllib
from importlib import metadata

import pytest
import yaml
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

SRC = REPO / "src"
SCRIPTS = REPO / "workflow" / "scripts"
ENVS = REPO / "envs"

# Third-party import name -> (conda-forge package, PyPI distribution).
PACKAGES = {
    "h5py": ("h5py", "h5py"),
    "jsonschema": ("jsonschema", "jsonschema"),
    "matplotlib": ("matplotlib-base", "matplotlib"),
    "numba": ("numba", "numba"),
    "numpy": ("numpy", "numpy"),
    "pandas": ("pandas", "pandas"),
    "psutil": ("psutil", "psutil"),
    "pyts": ("pyts", "pyts"),
    "scipy": ("scipy", "scipy"),
    "seaborn": ("seaborn-base", "seaborn"),
    "sklearn": ("scikit-learn", "scikit-learn"),
    "snakemake": ("snakemake-minimal", "snakemake"),
    "torch": ("pytorch", "torch"),
    "yaml": ("pyyaml", "PyYAML"),
}
CONDA_TO_DIST = {conda: dist for conda, dist in PACKAGES.values()}
DIST_TO_CONDA = {canonicalize_name(dist): conda for conda, dist in PACKAGES.values()}
# channel::name=version=build, e.g. numpy=2.4.6, pytorch=2.13.0=cpu*
SPEC = re.compile(r"(?:[\w.-]+::)?(?P<name>[\w.-]+)(?:=(?P<version>[^=\s]+)(?:=(?P<build>\S+))?)?")


def _catches_import_error(node):
    return isinstance(node, ast.Try) and any(
        handler.type is not None and any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
                                         for n in ast.walk(handler.type))
        for handler in node.handlers)


def imports(path):
    """(module, optional) of every import in a file, and (module.name, None) for each name of a
    `from module import name`, which may be a submodule."""
    found = []

    def visit(node, optional):
        if isinstance(node, ast.Import):
            found.extend((alias.name, optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:                       # relative: from the file's package
                package = path.parent.relative_to(SRC).parts
                module = ".".join(package[:len(package) - node.level + 1] + ((module,) if module else ()))
            found.append((module, optional))
            found.extend((f"{module}.{alias.name}", None) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, optional or _catches_import_error(node))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def local_files(module):
    """The files that importing `module` runs, if it is gafkd's or a module beside the scripts;
    None for any other module."""
    parts = module.split(".")
    if parts[0] == "gafkd":
        base = SRC
    elif (SCRIPTS / f"{parts[0]}.py").is_file():
        base = SCRIPTS
    else:
        return None
    files = []
    for depth in range(1, len(parts) + 1):
        path = base.joinpath(*parts[:depth])
        if (path / "__init__.py").is_file():
            files.append(path / "__init__.py")
        elif path.with_suffix(".py").is_file():
            files.append(path.with_suffix(".py"))
    return files


def third_party_imports(*paths):
    """{top-level module: the file that imports it} of the third-party modules that `paths`
    import, directly or through the gafkd modules they import; optional imports left out."""
    found, seen, todo = {}, set(), list(paths)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module, optional in imports(path):
            files = local_files(module)
            top = module.split(".")[0]
            if files is not None:
                todo.extend(files)
            elif optional is False and top not in sys.stdlib_module_names:
                found.setdefault(top, str(path.relative_to(REPO)))
    return found


def script_rules():
    """(rule file, rule, env file or None, script) of every rule with a script."""
    rules = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=(?:rule|checkpoint) )", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"\w+ (\w+):", block).group(1)
            body = re.split(r"^(?=\S)", block, flags=re.M)[1]  # up to the next top-level line
            directives = dict(re.findall(r'^    (conda|script):\s*"([^"]+)"', body, flags=re.M))
            if "script" in directives:
                env = directives.get("conda")
                rules.append((smk.name, name, env and (smk.parent / env).resolve(),
                              (smk.parent / directives["script"]).resolve()))
    return rules


def conda_specs(env_file):
    """{conda package: (version, build)} of an env file, and its pip section."""
    specs, pip = {}, None
    for dependency in yaml.safe_load(env_file.read_text())["dependencies"]:
        if isinstance(dependency, dict):
            pip = dependency["pip"]
            continue
        match = SPEC.fullmatch(dependency)
        assert match, f"{env_file.name}: cannot read {dependency!r} (write name=version)"
        specs[match["name"]] = (match["version"], match["build"])
    return specs, pip


def package(module):
    """(conda package, PyPI distribution) of a third-party module."""
    assert module in PACKAGES, f"{module}: a third-party module that PACKAGES does not map yet"
    return PACKAGES[module]


RULES = script_rules()
ENV_FILES = sorted(ENVS.glob("*.yaml"))


def test_the_rules_and_envs_are_found():
    assert {name for _, name, _, _ in RULES} >= {"build_windows", "build_images", "train_teacher", "aggregate",
                                                  "figures"}
    assert {path.name for path in ENV_FILES} >= {"data.yaml", "train.yaml", "report.yaml"}


@pytest.mark.parametrize("rule_file,rule,env,script", RULES, ids=[r[1] for r in RULES])
def test_each_rule_env_provides_what_its_script_imports(rule_file, rule, env, script):
    assert env is not None, f"rule {rule} ({rule_file}) runs a script but has no conda env"
    provided, _ = conda_specs(env)
    missing = {module: where for module, where in third_party_imports(script).items()
               if package(module)[0] not in provided}
    assert not missing, (f"rule {rule} ({rule_file}): {env.name} lacks the packages of "
                         f"{missing} (module: the file that imports it)")


def test_pyproject_declares_every_module_the_library_and_scripts_import():
    declared = {canonicalize_name(Requirement(r).name)
                for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    paths = sorted(SRC.rglob("*.py")) + sorted(SCRIPTS.glob("*.py"))
    undeclared = {module: where for module, where in third_party_imports(*paths).items()
                  if canonicalize_name(package(module)[1]) not in declared}
    assert not undeclared, f"pyproject.toml's dependencies lack {undeclared} (module: the file that imports it)"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_pins_the_versions_the_tests_run_with(env_file):
    specs, _ = conda_specs(env_file)
    assert specs["python"][0] == f"{sys.version_info.major}.{sys.version_info.minor}", env_file.name
    for name, (version, _) in specs.items():
        if name in ("python", "pip"):
            continue
        assert name in CONDA_TO_DIST, f"{env_file.name}: {name} is not in PACKAGES"
        installed = Version(metadata.version(CONDA_TO_DIST[name])).public
        assert version == installed, f"{env_file.name}: {name}={version}, but the tests run {installed}"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_installs_this_checkout_and_all_it_depends_on(env_file):
    """pip adds gafkd from the checkout (${GAFKD_CHECKOUT}, set by the Snakefile) and finds each
    of its dependencies installed by conda, so that it installs nothing else."""
    specs, pip = conda_specs(env_file)
    assert "pip" in specs and pip == ["-e ${GAFKD_CHECKOUT}"], env_file.name
    assert re.search(r"^os\.environ\.update\(GAFKD_CHECKOUT=workflow\.basedir\)$",
                     (REPO / "Snakefile").read_text(), flags=re.M)
    for text in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(text)
        name = DIST_TO_CONDA.get(canonicalize_name(requirement.name))
        assert name in specs, f"{env_file.name}: lacks {requirement.name}, which pip would fetch for gafkd"
        assert requirement.specifier.contains(specs[name][0]), (env_file.name, text, specs[name])


@pytest.mark.parametrize("env_file", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_pins_what_make_install_installs(env_file):
    """envs/pip-constraints.txt (the versions `make install` installs) and each env agree, so
    the pins hold on a fresh machine whatever PyPI has published since."""
    constraints = {canonicalize_name(Requirement(line).name): str(Requirement(line).specifier)[2:]
                   for line in (ENVS / "pip-constraints.txt").read_text().splitlines()
                   if line.strip() and not line.startswith("#")}
    specs, _ = conda_specs(env_file)
    pinned = {canonicalize_name(CONDA_TO_DIST[name]): version for name, (version, _) in specs.items()
              if name not in ("python", "pip", "pytorch")}
    assert pinned == constraints, env_file.name
