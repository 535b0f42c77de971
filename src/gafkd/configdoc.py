"""docs/configuration.md, written from the config schema (workflow/schemas/config.schema.yaml), so
that the reference of every key cannot drift from what the checks accept.

    python -m gafkd.configdoc            # print it
    python -m gafkd.configdoc --write    # write docs/configuration.md

The tests compare the file with what this module writes.
"""

import json
import sys
from pathlib import Path

from gafkd.configfile import load_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAGE = REPO / "docs" / "configuration.md"


def _type(spec):
    """The accepted values in a few words: the enum, the type, its range or pattern."""
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in spec["enum"])
    branches = spec.get("oneOf") or spec.get("anyOf")
    if branches:
        return " or ".join(_type(branch) for branch in branches)
    kind = spec.get("type", "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(spec.get("items"), dict):
        least = f", at least {spec['minItems']}" if "minItems" in spec else ""
        return f"list of ({_type(spec['items'])}){least}"
    bounds = []
    for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                      ("exclusiveMaximum", "<")):
        if key in spec:
            bounds.append(f"{word} {spec[key]}")
    if "pattern" in spec:
        bounds.append(f"matching `{spec['pattern']}`")
    return " ".join([kind or "any", *bounds]).strip()


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(spec, key):
    """(dotted key, accepted, default, description) of a schema node and every key below it."""
    rows = []
    if key:
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
        rows.append((f"`{key}`", _type(spec), default, _cell(spec.get("description", ""))))
    for name, sub in spec.get("properties", {}).items():
        rows += _rows(sub, f"{key}.{name}" if key else name)
    extra = spec.get("additionalProperties")
    if isinstance(extra, dict) and (extra.get("properties") or extra.get("description")):
        rows += _rows(extra, f"{key}.<name>")
    items = spec.get("items")
    if isinstance(items, dict) and items.get("properties"):
        rows += _rows(items, f"{key}[]")
    return rows


def render(schema_path=SCHEMA):
    schema = load_schema(str(schema_path))
    lines = ["# Configuration reference", "",
             "Every key a config may hold, from `workflow/schemas/config.schema.yaml` (written by "
             "`python -m gafkd.configdoc --write`; a test checks that this page matches the schema). "
             "`python -m gafkd.config CONFIG` checks a config file as the workflow does before any "
             "job; `python -m gafkd.plan --configfile CONFIG` shows the jobs it expands to.", "",
             _cell(schema.get("description", ""))]
    for section, spec in schema["properties"].items():
        lines += ["", f"## {section}", "", _cell(spec.get("description", "")), "",
                  "| key | accepted | default | meaning |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(row)} |" for row in _rows(spec, section)[1:] or [(f"`{section}`", _type(spec), "", "")]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv == ["--write"]:
        PAGE.write_text(text)
    elif argv:
        print("usage: python -m gafkd.configdoc [--write]", file=sys.stderr)
        return 2
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
