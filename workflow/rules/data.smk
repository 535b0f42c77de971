# (Public archive ->) raw files -> windows.h5 -> image cache.
from gafkd.data.download import CHECKSUM_NAME, read_record


# Only for a raw folder that is missing and has a `download` (DOWNLOADS, common.smk): fetch,
# check and unpack the archive; Protocol/ appears last, once everything is in place.
rule download_raw:
    output:
        directory("{root}/Protocol"),
        f"{{root}}/{CHECKSUM_NAME}",
    log:
        "{root}/download.log",
    wildcard_constraints:
        root="|".join(re.escape(str(Path(raw).parent)) for raw in DOWNLOADS) or "(?!)",
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        download=lambda wildcards: DOWNLOADS[f"{wildcards.root}/Protocol"],
    script:
        "../scripts/download_raw.py"


rule build_windows:
    input:
        raw_input,
        # The checksum record of a downloaded PAMAP2 folder, which the summary quotes.
        record=lambda wildcards: [
            f"{Path(raw).parent}/{CHECKSUM_NAME}"
            for raw in raw_input(wildcards)
            if config["datasets"][wildcards.dataset]["source"] == "pamap2"
            and (raw in DOWNLOADS or read_record(raw))
        ],
    output:
        h5="results/{dataset}/windows.h5",
        summary="results/{dataset}/windows_summary.md",
    log:
        "results/{dataset}/logs/windows.log",
    benchmark:
        "results/{dataset}/benchmarks/windows.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        **declared(lambda run: job_needs.windows_needs(config, run["dataset"])),
    params:
        spec=dataset_spec,
        # an edited, added or removed raw file reruns the windows and what follows
        raw_state=raw_state,
    script:
        "../scripts/build_windows.py"


rule build_images:
    input:
        "results/{dataset}/windows.h5",
    output:
        h5="results/{dataset}/images_{encoding}{size}{variant}.h5",
        gallery=report(
            "results/{dataset}/images_{encoding}{size}{variant}.png",
            caption="../report/gallery.rst",
            category="Images",
        ),
    log:
        "results/{dataset}/logs/images_{encoding}{size}{variant}.log",
    benchmark:
        "results/{dataset}/benchmarks/images_{encoding}{size}{variant}.tsv"
    wildcard_constraints:
        # what else changes the cache, in its name (gafkd.grid.image_tag)
        variant=names.IMAGE_VARIANT_REGEX,
    # first: every image teacher waits on its cache
    priority: 3
    conda:
        "../../envs/data.yaml"
    threads: 4
    resources:
        **declared(
            lambda run: job_needs.images_needs(config, run["dataset"], run["encoding"])
        ),
    script:
        "../scripts/build_images.py"


rule windows:
    input:
        expand("results/{dataset}/windows.h5", dataset=DATASETS),


rule images:
    input:
        expand("results/{dataset}/images_{tag}.h5", dataset=DATASETS, tag=IMAGE_TAGS),
        expand("results/{dataset}/images_{tag}.png", dataset=DATASETS, tag=IMAGE_TAGS),
