# Aggregation of every run into tables and figures, and the Snakemake report's captions.


rule aggregate:
    input:
        metrics=teacher_targets("metrics.json") + student_targets("metrics.json"),
        # read beside each metrics.json: the test-set intervals and McNemar's test
        predictions=teacher_targets("predictions.npz") + student_targets("predictions.npz"),
    output:
        runs=report(
            "results/report/runs.csv", caption="../report/runs.rst", category="Tables"
        ),
        summary=report(
            "results/report/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        comparisons=report(
            "results/report/comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
        ),
        tables="results/report/tables.md",
        tables_html=report(
            "results/report/tables.html",
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        "results/report/logs/aggregate.log",
    conda:
        "../../envs/report.yaml"
    params:
        teacher_archs=config["students"]["teacher_archs"],
        alphas=config["students"]["alphas"],
        expected=expected_runs_per_group(),
        options=REPORT_OPTIONS,
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        runs="results/report/runs.csv",
        # Read through the paths in runs.csv: every history.csv of the dataset's runs (learning
        # curves) and its students' metrics.json (the best student's confusion matrix).
        histories=lambda wildcards: [
            path
            for path in teacher_targets("history.csv") + student_targets("history.csv")
            if path.startswith(f"results/{wildcards.dataset}/")
        ],
        metrics=lambda wildcards: [
            path
            for path in student_targets("metrics.json")
            if path.startswith(f"results/{wildcards.dataset}/")
        ],
    output:
        alpha=report(
            "results/report/{dataset}_alpha.png",
            caption="../report/alpha.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        teachers_vs_students=report(
            "results/report/{dataset}_teachers_vs_students.png",
            caption="../report/teachers_vs_students.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        confusion=report(
            "results/report/{dataset}_confusion.png",
            caption="../report/confusion.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        learning_curves=report(
            "results/report/{dataset}_learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
    log:
        "results/report/logs/figures_{dataset}.log",
    conda:
        "../../envs/report.yaml"
    params:
        options=REPORT_OPTIONS,
    script:
        "../scripts/figures.py"


rule critical_difference:
    input:
        runs="results/report/runs.csv",
    output:
        report(
            "results/report/critical_difference.png",
            caption="../report/critical_difference.rst",
            category="Figures",
        ),
    log:
        "results/report/logs/critical_difference.log",
    conda:
        "../../envs/report.yaml"
    params:
        metric=REPORT_OPTIONS["metric"],
    script:
        "../scripts/critical_difference.py"


rule report:
    input:
        rules.aggregate.output,
        expand(rules.figures.output, dataset=DATASETS),
        rules.critical_difference.output,
        expand("results/{dataset}/images_{tag}.png", dataset=DATASETS, tag=IMAGE_TAGS),
