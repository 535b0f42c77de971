# gafkd: raw wearable-sensor files -> windows -> GAF images -> teachers -> distilled students.
#   snakemake --cores 12 --resources gpu=1      the whole grid
#   snakemake windows | images                  one stage for every dataset
#   snakemake results/<dataset>/windows.h5      one target
#   snakemake --report results/report.html      the browsable report (after a run)
from snakemake.utils import min_version

min_version("9.0")


# The default experiment, unless the command names its own (--configfile replaces it).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.input,
