# gafkd: raw wearable-sensor files -> windows -> GAF images -> teachers -> distilled students.
#   snakemake --cores 12 --resources gpu=1      the whole grid
#   snakemake windows | images                  one stage for every dataset
#   snakemake results/<dataset>/windows.h5      one target
#   snakemake --report results/report.html      the browsable report (after a run)
import os

from snakemake.utils import min_version

min_version("9.0")

# This checkout, for the `pip:` sections of envs/*.yaml (--software-deployment-method conda):
# conda runs pip in the folder of Snakemake's copy of an env file, in the conda prefix, where a
# path relative to envs/ means nothing; pip expands ${GAFKD_CHECKOUT} from the environment.
os.environ.update(GAFKD_CHECKOUT=workflow.basedir)


# The default experiment, unless the command names its own (--configfile replaces it).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/report.smk"


# Every intermediate too: a deleted one (an image cache, a teacher's model.pt, a run's
# metrics.json) is rebuilt by `snakemake all`, with what depends on it.
rule all:
    default_target: True
    input:
        rules.windows.input,
        rules.images.input,
        rules.teachers.input,
        rules.students.input,
        rules.report.input,
