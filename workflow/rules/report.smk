# Aggregation of every run into tables and figures, and the Snakemake report's captions.


rule aggregate:
    input:
        metrics=teacher_targets("metrics.json") + student_targets("metrics.json"),
        # read beside each metrics.json: the test-set intervals and McNemar's test
        predictions=teacher_targets("predictions.npz")
        + student_targets("predictions.npz"),
    output:
        runs=report(
            f"{REPORT}/runs.csv", caption="../report/runs.rst", category="Tables"
        ),
        summary=report(
            f"{REPORT}/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        comparisons=report(
            f"{REPORT}/comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
        ),
        tables=f"{REPORT}/tables.md",
        tables_html=report(
            f"{REPORT}/tables.html",
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        f"{REPORT}/logs/aggregate.log",
    conda:
        "../../envs/report.yaml"
    resources:
        **job_needs.report_needs(config).resources(),
    params:
        teacher_archs=config["students"]["teacher_archs"],
        alphas=config["students"]["alphas"],
        expected=expected_runs_per_group(),
        options=REPORT_OPTIONS,
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        runs=f"{REPORT}/runs.csv",
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
            f"{REPORT}/{{dataset}}_alpha.png",
            caption="../report/alpha.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        teachers_vs_students=report(
            f"{REPORT}/{{dataset}}_teachers_vs_students.png",
            caption="../report/teachers_vs_students.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        confusion=report(
            f"{REPORT}/{{dataset}}_confusion.png",
            caption="../report/confusion.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        learning_curves=report(
            f"{REPORT}/{{dataset}}_learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
    log:
        f"{REPORT}/logs/figures_{{dataset}}.log",
    conda:
        "../../envs/report.yaml"
    resources:
        **job_needs.report_needs(config).resources(),
    params:
        options=REPORT_OPTIONS,
    script:
        "../scripts/figures.py"


rule critical_difference:
    input:
        runs=f"{REPORT}/runs.csv",
    output:
        report(
            f"{REPORT}/critical_difference.png",
            caption="../report/critical_difference.rst",
            category="Figures",
        ),
    log:
        f"{REPORT}/logs/critical_difference.log",
    conda:
        "../../envs/report.yaml"
    resources:
        **job_needs.report_needs(config).resources(),
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
