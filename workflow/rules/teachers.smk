# Teachers: every modality x architecture x seed x fold, each job on its own device slot.


rule train_teacher:
    input:
        unpack(teacher_inputs),
    output:
        model=f"{TEACHER_RUN}/model.pt",
        metrics=f"{TEACHER_RUN}/metrics.json",
        history=f"{TEACHER_RUN}/history.csv",
        predictions=f"{TEACHER_RUN}/predictions.npz",
    log:
        "results/{dataset}/logs/teachers/{fold}/{modality}-{arch}-seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/teachers/{fold}/{modality}-{arch}-seed{seed}.tsv"
    # before students: each gates its outputs, similarity caches and students
    priority: 2
    conda:
        "../../envs/train.yaml"
    threads: config["devices"]["threads"]
    resources:
        **declared(lambda run: job_needs.teacher_needs(config, run)),
    params:
        settings=teacher_settings,
    script:
        "../scripts/train_teacher.py"


# Every file of the stage, so that one deleted (a model.pt, an outputs.h5) is rebuilt from here or `all`.
rule teachers:
    input:
        [teacher_targets(name) for name in runfiles.RUN_FILE_NAMES.values()],
        TEACHER_FILES,


# Packs (teachers.pack > 1): signal teachers of one dataset, fold and architecture that differ
# only in seed train together, one job and one device slot per pack; each member writes a solo
# run's files. A pack's rule takes precedence over train_teacher for its members' files.
for number, pack in enumerate(TEACHER_PACKS):

    rule:
        name:
            f"train_teacher_pack{number}"
        input:
            **grid.pack_inputs(config, pack),
        output:
            **pack.outputs(),
        log:
            f"results/{pack.runs[0]['dataset']}/logs/teachers/{pack.runs[0]['fold']}/{pack.label}.log",
        benchmark:
            f"results/{pack.runs[0]['dataset']}/benchmarks/teachers/{pack.runs[0]['fold']}/{pack.label}.tsv"
        priority: 2
        conda:
            "../../envs/train.yaml"
        threads: config["devices"]["threads"]
        resources:
            **job_needs.teacher_needs(config, pack.runs[0], len(pack.runs)).resources(),
        params:
            settings=grid.pack_settings(config, pack),
        script:
            "../scripts/train_teacher_pack.py"

    workflow.ruleorder(f"train_teacher_pack{number}", "train_teacher")
