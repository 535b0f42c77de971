# Teacher outputs (logits of every window, and the similarity caches of SP students, once per
# teacher) and the student grid.


# One rule per cache, named teacher_<cache>: the teacher's logits of every window (outputs.h5)
# and its similarity cache over its fold's training windows (similarity.h5).
TEACHER_CACHES = {
    "outputs": job_needs.outputs_needs,
    "similarity": job_needs.similarity_needs,
}

for cached, cache_needs in TEACHER_CACHES.items():

    rule:
        name:
            f"teacher_{cached}"
        input:
            unpack(teacher_inputs),
            model=f"{TEACHER_RUN}/model.pt",
        output:
            f"{TEACHER_RUN}/{cached}.h5",
        log:
            f"results/{{dataset}}/logs/teachers/{{fold}}/{{modality}}-{{arch}}-seed{{seed}}-{cached}.log",
        benchmark:
            f"results/{{dataset}}/benchmarks/teachers/{{fold}}/{{modality}}-{{arch}}-seed{{seed}}-{cached}.tsv"
        # before students, whose inputs they are
        priority: 1
        conda:
            "../../envs/train.yaml"
        threads: config["devices"]["threads"]
        resources:
            **declared(lambda run, needs=cache_needs: needs(config, run)),
        params:
            threads=torch_threads(),
        script:
            "../scripts/teacher_cache.py"


rule train_student:
    input:
        unpack(student_inputs),
    output:
        model=f"{STUDENT_RUN}/model.pt",
        metrics=f"{STUDENT_RUN}/metrics.json",
        history=f"{STUDENT_RUN}/history.csv",
        predictions=f"{STUDENT_RUN}/predictions.npz",
    log:
        "results/{dataset}/logs/students/{fold}/{arch}-{method}-{teachers}-alpha{alpha}-seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/students/{fold}/{arch}-{method}-{teachers}-alpha{alpha}-seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: student_threads
    resources:
        **declared(lambda run: job_needs.student_needs(config, [run])),
    params:
        settings=student_settings,
    script:
        "../scripts/train_student.py"


# Every file of the stage, so that one deleted is rebuilt from here or `all`.
rule students:
    input:
        [student_targets(name) for name in runfiles.RUN_FILE_NAMES.values()],


# Packs (students.pack > 1): runs of one grid cell that differ only in seed and α train together,
# one job and one device slot per pack; each member writes a solo run's files. A pack's rule takes
# precedence over train_student for its members' files.
for number, pack in enumerate(STUDENT_PACKS):

    rule:
        name:
            f"train_student_pack{number}"
        input:
            **grid.pack_inputs(config, pack),
        output:
            **pack.outputs(),
        log:
            f"results/{pack.runs[0]['dataset']}/logs/students/{pack.runs[0]['fold']}/{pack.label}.log",
        benchmark:
            f"results/{pack.runs[0]['dataset']}/benchmarks/students/{pack.runs[0]['fold']}/{pack.label}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: config["devices"]["threads"]
        resources:
            **job_needs.student_needs(config, list(pack.runs)).resources(),
        params:
            settings=grid.pack_settings(config, pack),
        script:
            "../scripts/train_student_pack.py"

    workflow.ruleorder(f"train_student_pack{number}", "train_student")
