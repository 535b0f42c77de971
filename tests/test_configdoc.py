"""docs/configuration.md is the schema's own reference (gafkd.configdoc)."""
import yaml
from conftest import REPO

from gafkd.configdoc import PAGE, SCHEMA, render


def test_the_configuration_page_matches_the_schema():
    assert PAGE.read_text() == render(), "run: python -m gafkd.configdoc --write"


def test_every_key_of_the_schema_is_on_the_page():
    def keys(spec, prefix):
        for name, sub in spec.get("properties", {}).items():
            yield f"{prefix}.{name}" if prefix else name
            yield from keys(sub, f"{prefix}.{name}" if prefix else name)
        extra = spec.get("additionalProperties")
        if isinstance(extra, dict):
            yield from keys(extra, f"{prefix}.<name>")

    page = render()
    schema = yaml.safe_load(SCHEMA.read_text())
    for section in schema["properties"]:
        assert f"## {section}" in page
    for key in keys(schema, ""):
        if "." in key:
            assert f"`{key}`" in page, key
    assert (REPO / "docs" / "configuration.md") == PAGE
