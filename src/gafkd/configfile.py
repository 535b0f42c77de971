"""A config file as the workflow reads it: YAML with its line numbers, no key twice, aliases
bounded (load_yaml); files merged as Snakemake merges them (merge_config); the schema's first
error in one line that names the key, and a retired key with what replaced it (schema_errors).
gafkd.config checks what the schema cannot."""

import functools
import math
from pathlib import Path

from gafkd.errors import ConfigError


@functools.lru_cache(maxsize=4)
def load_schema(schema_path):
    """The config schema (read once per process, with libyaml's loader where PyYAML has it)."""
    import yaml

    return yaml.load(Path(schema_path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def schema_errors(config, schema_path):
    """'key.path: message' of the config's first schema error (None when valid): one line that
    names the key, where a schema validator would print the whole schema."""
    import jsonschema

    schema = load_schema(str(schema_path))
    retired = retired_key(config)
    if retired:
        return retired
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        for where, value in float_integers(config, schema):
            return f"{where}: {value!r} is not an integer; write {int(value)}"
        return None
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


def float_integers(value, schema, key=""):
    """(dotted key, value) of the whole floats (8.0) where the schema asks for an integer: JSON
    Schema's "integer" accepts them, but they would name other folders (seed8.0) and break
    integer arithmetic."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if isinstance(value, float) and "integer" in types and "number" not in types:
        return [(key or "(top level)", value)]
    found = []
    if isinstance(value, dict):
        for name, item in value.items():
            sub = schema.get("properties", {}).get(name, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                found += float_integers(item, sub, f"{key}.{name}".lstrip("."))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += float_integers(item, schema["items"], f"{key}[{i}]")
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        found += float_integers(value, branch, key)
    return found


def retired_key(config):
    """'key: replaced by …' for a key of an older config that a newer one replaced, else None:
    a retired key is refused with what to write, never read in a way it did not mean."""
    images = config.get("images")
    if isinstance(images, dict) and "method" in images:
        return (f"images.method: replaced by images.methods, a list of encodings, each with its own "
                f"cache and teachers; write `methods: [{images['method']}]` (teacher folders are named "
                f"by the encoding: teachers/{images['method']}/..., no longer teachers/gaf/...)")
    training = config.get("training")
    old = [key for key in ("bf16", "fast_math") if isinstance(training, dict) and key in training]
    if old:
        bf16, fast_math = training.get("bf16") is True, training.get("fast_math") is True
        precision = "bf16" if bf16 else "tf32" if fast_math else "fp32"
        said = ", ".join(f"{key}: {str(training[key]).lower()}" for key in old)
        return (f"training.{old[0]}: replaced by training.precision (fp32, tf32 or bf16, every one "
                f"deterministic); for what `{said}` meant write `precision: {precision}` and remove "
                f"{' and '.join(old)}")
    return None


MAX_YAML_NODES = 100_000     # a config expands to a few thousand at most; aliases may not blow it up


def load_yaml(path):
    """A YAML file's contents, read as the workflow must read a config: UTF-8 (a file in another
    encoding is named with the fix), a syntax error names its line, a key given twice in one
    mapping is an error (YAML loaders keep the last one silently, so one of two `training:`
    blocks would be ignored), and aliases may not expand the document past MAX_YAML_NODES nodes
    (the 'billion laughs' of nested aliases is refused before anything walks it)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            first = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in first:
                    raise ConfigError(f"{path}, line {line}: key '{key}' is given twice in one mapping "
                                      f"(first on line {first[key]}); merge the two into one")
                first[key] = line
            return super().construct_mapping(node, deep)

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start}); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 "
                          f"{path} > fixed.yaml") from None
    try:
        loader = UniqueKeys(text)
        try:
            root = loader.get_single_node()
            if root is not None and _expanded_nodes(root) > MAX_YAML_NODES:
                raise ConfigError(f"{path}: its aliases (*name) expand it to more than "
                                  f"{MAX_YAML_NODES:,} values; write the values out instead")
            return None if root is None else loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def _expanded_nodes(root):
    """Nodes of a composed YAML document with every alias expanded (each node counted once per
    place it appears), computed without expanding: a node's size is remembered."""
    import yaml

    sizes = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = ([item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if children_done:
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in children)
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def non_finite_numbers(value, key=""):
    """(dotted key, value) of the infinite or NaN numbers in a config (`.inf`, `.nan` in YAML)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(key, value)]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [found for name, item in items for found in non_finite_numbers(item, f"{key}.{name}".lstrip("."))]


def merge_config(base, update):
    """`update` merged into `base` in place, mapping by mapping, as Snakemake merges config files."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = value
    return base
