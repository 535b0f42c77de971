# (Public archive ->) raw files -> windows.h5 -> image cache.


# Only for a raw folder that is missing and has a `download` (DOWNLOADS, common.smk): fetch,
# check and unpack the archive; Protocol/ appears last, once everything is in place.
rule download_raw:
    output:
        directory("{root}/Protocol"),
    params:
        download=lambda wildcards: DOWNLOADS[f"{wildcards.root}/Protocol"],
    log:
        "{root}/download.log",
    wildcard_constraints:
        root="|".join(re.escape(str(Path(raw).parent)) for raw in DOWNLOADS) or "(?!)",
    localrule: True
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_raw.py"


rule build_windows:
    input:
        raw_input,
    output:
        h5="results/{dataset}/windows.h5",
        summary="results/{dataset}/windows_summary.md",
    params:
        spec=dataset_spec,
    log:
        "results/{dataset}/logs/windows.log",
    benchmark:
        "results/{dataset}/benchmarks/windows.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/build_windows.py"


rule build_images:
    input:
        "results/{dataset}/windows.h5",
    output:
        h5="results/{dataset}/images_{encoding}{size}.h5",
        gallery=report(
            "results/{dataset}/images_{encoding}{size}.png",
            caption="../report/gallery.rst",
            category="Images",
        ),
    log:
        "results/{dataset}/logs/images_{encoding}{size}.log",
    threads: 4
    benchmark:
        "results/{dataset}/benchmarks/images_{encoding}{size}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/build_images.py"


rule windows:
    input:
        expand("results/{dataset}/windows.h5", dataset=DATASETS),


rule images:
    input:
        expand("results/{dataset}/images_{tag}.h5", dataset=DATASETS, tag=IMAGE_TAG),
        expand("results/{dataset}/images_{tag}.png", dataset=DATASETS, tag=IMAGE_TAG),
