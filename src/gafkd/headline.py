"""The pre-declared headline: report.headline names the one comparison an experiment is for.

It is reported first and tested at report.alpha without adjustment; every other comparison is
exploratory and Holm-adjusted (gafkd.report.comparisons.comparison_table). The config check fills in
what the config leaves to the grid (baseline: scratch; the image encoding and teacher
architecture where the grid has one) and refuses a headline the grid does not run.
"""

from gafkd.errors import ConfigError
from gafkd.methods import TEACHER_ROWS, method

IMAGE_ROLE = TEACHER_ROWS["teacher-gaf"]        # the image teacher's role in a method's teachers


def _one(key, value, choices, what):
    if value is None:
        if len(choices) != 1:
            raise ConfigError(f"report.headline.{key}: the grid runs {len(choices)} {what} "
                              f"({', '.join(choices)}); name the one the headline is about")
        return choices[0]
    if value not in choices:
        raise ConfigError(f"report.headline.{key}: '{value}' is not run by this config ({what}: "
                          f"{', '.join(choices)})")
    return value


def check_headline(config):
    """Check report.headline against the student grid and fill in its defaults, in place."""
    headline = (config.get("report") or {}).get("headline")
    if not headline:
        return None
    students = config["students"]
    headline.setdefault("baseline", "scratch")
    for key in ("method", "baseline"):
        name = headline[key]
        if name not in students["methods"]:
            raise ConfigError(f"report.headline.{key}: '{name}' is not run by this config (students.methods: "
                              f"{', '.join(students['methods'])})")
    record, base = method(headline["method"]), method(headline["baseline"])
    if headline["method"] == headline["baseline"]:
        raise ConfigError(f"report.headline: method and baseline are both '{headline['method']}'")
    if record.alpha_grid:
        alphas = [float(a) for a in students["alphas"]]
        if "alpha" not in headline:
            raise ConfigError(f"report.headline.alpha: '{record.name}' runs for each students.alphas entry "
                              f"({', '.join(f'{a:g}' for a in alphas)}); say which")
        if not any(abs(headline["alpha"] - a) < 1e-9 for a in alphas):
            raise ConfigError(f"report.headline.alpha: {headline['alpha']} is not in students.alphas {alphas}")
    elif "alpha" in headline:
        raise ConfigError(f"report.headline.alpha: '{record.name}' has no α grid; remove alpha")
    if record.teachers or base.teachers:
        headline["teacher_arch"] = _one("teacher_arch", headline.get("teacher_arch"),
                                        list(students["teacher_archs"]), "teacher architectures")
    if IMAGE_ROLE in record.teachers or IMAGE_ROLE in base.teachers:
        paired = students.get("paired_images") or config["images"]["methods"]
        encodings = list(paired if len(record.teachers) > 1 else config["images"]["methods"])
        headline["images"] = _one("images", headline.get("images"), encodings, "image encodings")
    return headline


def _config(name, headline, alpha=None):
    record = method(name)
    return (name, headline.get("images", "") if IMAGE_ROLE in record.teachers else "",
            headline.get("teacher_arch", "") if record.teachers else "",
            float(alpha if record.alpha_grid and alpha is not None else record.alpha))


def headline_comparison(headline, students, arch=None):
    """(configuration, baseline) of the headline in the comparison tables' terms, or None where
    there is no headline or the student architecture `arch` is not the headline's."""
    if not headline or (arch is not None and headline.get("student_arch", arch) != arch):
        return None
    config = _config(headline["method"], headline, headline.get("alpha"))
    return config, _config(headline["baseline"], headline, headline.get("alpha"))


def headline_label(headline):
    """'kd2-anneal-sp (α = 0.3, teachers wrn16-1) vs scratch' for the text above the tables."""
    said = [f"α = {headline['alpha']:g}"] if "alpha" in headline else []
    said += [f"{key.replace('_', ' ')} {headline[key]}" for key in ("images", "teacher_arch") if key in headline]
    return f"{headline['method']}" + (f" ({', '.join(said)})" if said else "") + f" vs {headline['baseline']}"
