# Teacher outputs (logits of every window, and the similarity caches of SP students, once per
# teacher) and the student grid.


rule teacher_outputs:
    input:
        unpack(teacher_inputs),
        model=f"{TEACHER_RUN}/model.pt",
    output:
        "results/{dataset}/{fold}/teachers/{modality}/{arch}/seed{seed}/outputs.h5",
    log:
        "results/{dataset}/logs/teachers/{fold}/{modality}-{arch}-seed{seed}-outputs.log",
    benchmark:
        "results/{dataset}/benchmarks/teachers/{fold}/{modality}-{arch}-seed{seed}-outputs.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["devices"]["threads"]
    resources:
        gpu=1,
    params:
        threads=torch_threads(),
    script:
        "../scripts/teacher_outputs.py"


rule teacher_similarity:
    input:
        unpack(teacher_inputs),
        model=f"{TEACHER_RUN}/model.pt",
    output:
        "results/{dataset}/{fold}/teachers/{modality}/{arch}/seed{seed}/similarity.h5",
    log:
        "results/{dataset}/logs/teachers/{fold}/{modality}-{arch}-seed{seed}-similarity.log",
    benchmark:
        "results/{dataset}/benchmarks/teachers/{fold}/{modality}-{arch}-seed{seed}-similarity.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["devices"]["threads"]
    resources:
        gpu=1,
    params:
        threads=torch_threads(),
    script:
        "../scripts/teacher_similarity.py"


rule train_student:
    input:
        unpack(student_inputs),
    output:
        model=f"{STUDENT_RUN}/model.pt",
        metrics=f"{STUDENT_RUN}/metrics.json",
        history=f"{STUDENT_RUN}/history.csv",
    log:
        "results/{dataset}/logs/students/{fold}/{arch}-{method}-{teachers}-alpha{alpha}-seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/students/{fold}/{arch}-{method}-{teachers}-alpha{alpha}-seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: student_threads
    resources:
        gpu=student_gpus,
    params:
        settings=student_settings,
    script:
        "../scripts/train_student.py"


rule students:
    input:
        student_targets("metrics.json"),
