# Teachers: every modality x architecture x seed x fold, each job on its own device slot.


rule train_teacher:
    input:
        unpack(teacher_inputs),
    output:
        model=f"{TEACHER_RUN}/model.pt",
        metrics=f"{TEACHER_RUN}/metrics.json",
        history=f"{TEACHER_RUN}/history.csv",
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
        gpu=1,
    params:
        settings=teacher_settings,
    script:
        "../scripts/train_teacher.py"


rule teachers:
    input:
        teacher_targets("metrics.json"),
