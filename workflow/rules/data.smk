# Raw files -> windows.h5 -> image cache.


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
