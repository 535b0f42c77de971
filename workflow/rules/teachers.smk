# Teachers: every modality x architecture x seed x fold, each job on its own device slot.


rule train_teacher:
    input:
        unpack(teacher_inputs),
    output:
        model="results/{dataset}/{fold}/teachers/{modality}/{arch}/seed{seed}/model.pt",
        metrics="results/{dataset}/{fold}/teachers/{modality}/{arch}/seed{seed}/metrics.json",
        history="results/{dataset}/{fold}/teachers/{modality}/{arch}/seed{seed}/history.csv",
    params:
        settings=teacher_settings,
    threads: config["devices"]["threads"]
    resources:
        gpu=1,
    log:
        "results/{dataset}/logs/teachers/{fold}/{modality}-{arch}-seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/teachers/{fold}/{modality}-{arch}-seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_teacher.py"


rule teachers:
    input:
        teacher_targets("metrics.json"),
