# gafkd: raw wearable-sensor files -> windows -> GAF images -> teachers -> distilled students.
#   snakemake --cores 12 --resources gpu=1      the whole grid
#   snakemake windows | images                  one stage for every dataset
#   snakemake results/<dataset>/windows.h5      one target
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/students.smk"


rule all:
    default_target: True
    input:
        rules.windows.input,
        rules.images.input,
        rules.teachers.input,
        rules.students.input,
