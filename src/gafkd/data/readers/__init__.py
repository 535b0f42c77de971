"""Raw-data readers: a resolved dataset spec -> WindowSet."""

from gafkd.errors import ConfigError
from gafkd.data.readers.basicmotions import read_basicmotions
from gafkd.data.readers.geneactiv import read_geneactiv
from gafkd.data.readers.pamap2 import read_pamap2


def read_dataset(spec):
    """Read the windows a resolved dataset spec (see gafkd.data.datasets) describes."""
    source = spec["source"]
    if source == "basicmotions":
        return read_basicmotions()
    if source == "geneactiv_mat":
        return read_geneactiv(spec["raw"], spec["window"], class_map=spec.get("class_map"),
                              channels=spec.get("channels"),
                              sampling_rate_hz=spec["sampling_rate_hz"])
    if source == "pamap2":
        return read_pamap2(spec["raw"], window=spec["window"], step=spec["step"],
                           downsample=spec["downsample"], channels=spec["channels"],
                           class_map=spec.get("class_map"), subjects=spec.get("subjects"),
                           protocol=spec["protocol"])
    raise ConfigError(f"unknown source '{source}' (known: basicmotions, geneactiv_mat, pamap2)")
