"""Packed student runs (gafkd.train.packed, gafkd.distill.students.train_students): a member is its solo run
to float32 rounding, keeps a solo run's files, resumes with its pack, and only runs that can
train together are packed. A member of a pack whose convolutions are batched GEMMs is the same
bits whatever the pack's width."""
import json

import pytest
import torch
from conftest import basicmotions_fold, narrowing_packs_to

from gafkd import grid
from gafkd import names
from gafkd import methods
from gafkd.config import check_config_file, training_defaults
from gafkd.errors import ConfigError
from gafkd.train.models import build_model
from gafkd.distill import students as students_module
from gafkd.train import packed as packed_module
from gafkd.train.packed import PackedWideResNet, gemm_conv1d, member_part, pack_models, resolve_fusion
from gafkd.distill.similarity_cache import build_similarity_cache
from gafkd.distill.students import PACK_SHARED, StudentRun, train_students
from gafkd.distill.teacher_outputs import write_teacher_outputs
from gafkd.distill.teachers import train_teacher

CPU = torch.device("cpu")
TRAINING = {**training_defaults(), "epochs": 1, "batch_size": 8}
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "beta": 700.0, "sp_merge": "raw",
      "sp_source": "cache", "standardize_logits": False}
# measured after one epoch (4 steps): grouped, at most 2.4e-6 of a tensor's largest value apart;
# gemm, at most 2.8e-6; members one by one, bit-identical
TOLERANCE = {"grouped": 1e-5, "gemm": 1e-5, "members": 0.0}


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    """BasicMotions with GAF and signal teachers of seeds 1 and 2, their logits and caches."""
    root = tmp_path_factory.mktemp("packed")
    files = basicmotions_fold(root, images_size=16)
    for seed in (1, 2):
        for modality in ("gaf", "sig"):
            run = root / f"{modality}{seed}"
            run.mkdir()
            out = {k: run / k for k in ("model", "metrics", "history")}
            train_teacher(files["windows"], files["images"],
                          {"dataset": "basicmotions", "fold": "predefined", "modality": {"gaf": "gasf"}.get(modality, modality),
                           "arch": "wrn10-1", "seed": seed, "images": {"method": "gasf", "size": 16},
                           "training": TRAINING}, out, run / "resume.pt", CPU)
            write_teacher_outputs(out["model"], files["windows"], files["images"], run / "outputs.h5", CPU)
            build_similarity_cache(out["model"], files["windows"], files["images"], run / "similarity.h5", CPU)
    return files


def student(fold, folder, method, seed, alpha, pack=None, training=TRAINING):
    settings = {"dataset": "basicmotions", "fold": "predefined", "arch": "wrn10-1", "method": method,
                "teachers": names.teachers_tag(method, "wrn10-1", "gasf"), "alpha": alpha, "seed": seed,
                "teacher_seed": seed, "training": training}
    if method != "scratch":
        settings["kd"] = KD
    if pack is not None:
        settings["pack"] = pack
    root = fold["root"]
    inputs = {"windows": fold["windows"]}
    for modality in methods.method(method).teachers:
        inputs[f"{modality}_outputs"] = root / f"{modality}{seed}" / "outputs.h5"
        inputs[f"{modality}_similarity"] = root / f"{modality}{seed}" / "similarity.h5"
    if methods.method(method).starts_from:
        inputs["init"] = root / f"scratch{seed}" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    return StudentRun(settings, inputs, {k: folder / k for k in ("model", "metrics", "history")},
                      folder / "resume.pt")


def train_annealing_starts(fold):
    for seed in (1, 2):
        scratch = fold["root"] / f"scratch{seed}"
        if not (scratch / "model").exists():
            train_students([student(fold, scratch, "scratch", seed, 0.0)], CPU)


def weights(run):
    return torch.load(run.outputs["model"], weights_only=True)["state_dict"]


def relative_difference(a, b):
    return max(float((a[n].double() - b[n].double()).abs().max() / a[n].double().abs().max().clamp_min(1e-12))
               for n in a if a[n].dtype.is_floating_point)


@pytest.mark.parametrize("fusion", PackedWideResNet.FUSIONS)
def test_packed_network_computes_each_members_solo_network(fusion):
    models = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        models.append(build_model("wrn16-1", 6, 4, dims=1))
    packed = pack_models(models, fusion)
    x = torch.randn(3, 8, 6, 100)                     # a batch of 8 per member
    for train in (True, False):
        packed.train(train)
        logits, groups = packed(packed.join(x.reshape(24, 6, 100)))
        logits, groups = packed.member_major(logits, groups)
        for k, model in enumerate(models):
            solo_logits, solo_groups = model.train(train)(x[k])
            torch.testing.assert_close(logits[k], solo_logits, rtol=1e-5, atol=1e-5)
            for g, solo in zip(groups, solo_groups):
                torch.testing.assert_close(g[k], solo, rtol=1e-5, atol=1e-5)
    # BatchNorm statistics moved once per training forward, as each solo network's did
    for k, model in enumerate(models):
        assert all(torch.allclose(packed.member_state(k)[n], t, rtol=1e-5, atol=1e-6)
                   for n, t in model.state_dict().items() if "running" in n or "batches" in n)
    # a member's state is a solo network's, both ways
    packed.load_member_state(1, models[2].state_dict())
    assert all(torch.equal(packed.member_state(1)[n], t) for n, t in models[2].state_dict().items())
    assert set(packed.member_state(0)) == set(models[0].state_dict())


def seeded_models(seeds, arch="wrn10-1", in_channels=3):
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build_model(arch, in_channels, 4, dims=1))
    return models


def sum_of_squares(logits, groups):
    """A loss whose gradient reaches every layer and is each member's own."""
    return logits.square().sum() + sum(g.square().sum() for g in groups)


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("length", [1, 8, 33])
@pytest.mark.parametrize("width, stride, padding", [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0)])
def test_gemm_conv1d_is_the_grouped_convolution(members, length, width, stride, padding):
    torch.manual_seed(0)
    x = torch.randn(4, members * 5, length, dtype=torch.float64)
    weight = torch.randn(members * 7, 5, width, dtype=torch.float64)
    expected = torch.nn.functional.conv1d(x, weight, stride=stride, padding=padding, groups=members)
    torch.testing.assert_close(gemm_conv1d(x, weight, stride, padding, members), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("length", [7, 20, 33])
def test_a_gemm_pack_computes_the_grouped_pack_and_the_solo_networks(length, monkeypatch):
    # wrn10-1: a stride-1 block without shortcut, then two stride-2 blocks with 1x1 shortcuts
    models = seeded_models((1, 2, 3))
    x = torch.randn(3, 5, 3, length)                  # a batch of 5 per member
    gemms = []
    monkeypatch.setattr(packed_module, "gemm_conv1d", lambda *a: gemms.append(a) or gemm_conv1d(*a))
    results = {}
    for fusion in ("gemm", "grouped"):
        packed = pack_models(models, fusion).train()
        logits, groups = packed(packed.join(x.reshape(15, 3, length)))
        sum_of_squares(logits, groups).backward()
        logits, groups = packed.member_major(logits, groups)
        results[fusion] = [(logits[k], [g[k] for g in groups],
                            {n: member_part(p.grad, 3, k) for n, p in packed.named_parameters()}) for k in range(3)]
        assert len(gemms) == (9 if fusion == "gemm" else 0)   # every convolution, the shortcuts too
        gemms.clear()
    for k, model in enumerate(models):
        solo_logits, solo_groups = model.train()(x[k])
        sum_of_squares(solo_logits, solo_groups).backward()
        solo = (solo_logits, solo_groups, {n: p.grad for n, p in model.named_parameters()})
        for other in (solo, results["grouped"][k]):
            gemm = results["gemm"][k]
            for a, b in zip([gemm[0], *gemm[1], *gemm[2].values()], [other[0], *other[1], *other[2].values()]):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.detach().abs().max()))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_gemm_member_is_the_same_bits_in_packs_of_any_width(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        (member,) = seeded_models([7], "wrn16-1")
        inputs = torch.randn(6, 3, 45)
        outcomes = []
        for width, place in ((1, 0), (3, 1), (5, 3)):         # member 0 of 1, 1 of 3, 3 of 5
            models = seeded_models(range(width - 1), "wrn16-1")
            models.insert(place, member)
            x = torch.randn(width, 6, 3, 45)
            x[place] = inputs
            packed = pack_models(models, "gemm").train()
            logits, groups = packed(packed.join(x.reshape(-1, 3, 45)))
            sum_of_squares(logits, groups).backward()
            logits, groups = packed.member_major(logits, groups)
            outcomes.append([logits[place], *(g[place] for g in groups),
                             *(member_part(p.grad, width, place) for p in packed.parameters()),
                             *packed.member_state(place).values()])       # BatchNorm's statistics
        assert all(len(o) == len(outcomes[0]) for o in outcomes)
        for other in outcomes[1:]:
            assert all(torch.equal(a, b) for a, b in zip(outcomes[0], other))
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before


def test_gemm_is_for_1d_packs_only():
    with pytest.raises(ValueError, match=r"fusion 'gemm'.*dims=2"):
        PackedWideResNet("wrn10-1", 3, 4, dims=2, members=2, fusion="gemm")
    PackedWideResNet("wrn10-1", 3, 4, dims=2, members=2, fusion="grouped")
    with pytest.raises(ValueError, match="fusion must be one of"):
        PackedWideResNet("wrn10-1", 3, 4, dims=1, members=2, fusion="bmm")


def test_the_default_fusion_follows_the_device():
    assert resolve_fusion(None, torch.device("cpu"), 1) == "members"
    assert resolve_fusion(None, "cpu", 2) == "members"
    assert resolve_fusion(None, torch.device("cuda", 1), 1) == "gemm"
    assert resolve_fusion(None, "cuda", 2) == "grouped"
    assert all(resolve_fusion(f, "cuda", 1) == resolve_fusion(f, "cpu", 1) == f for f in PackedWideResNet.FUSIONS)


def test_a_members_optimizer_state_is_a_solo_runs():
    torch.manual_seed(0)
    packed = pack_models([build_model("wrn10-1", 3, 4, dims=1) for _ in range(3)])
    optimizer = torch.optim.SGD(packed.parameters(), lr=0.1, momentum=0.9)
    logits, _ = packed(torch.randn(5, 9, 20))
    logits.sum().backward()
    optimizer.step()
    states = [packed.member_optimizer_state(optimizer, k) for k in range(3)]
    solo = build_model("wrn10-1", 3, 4, dims=1)
    for state in states:                         # loads into a solo run's optimizer
        torch.optim.SGD(solo.parameters(), lr=0.1, momentum=0.9).load_state_dict(state)
    before = {i: s["momentum_buffer"].clone() for i, s in optimizer.state_dict()["state"].items()}
    fresh = torch.optim.SGD(packed.parameters(), lr=0.1, momentum=0.9)
    packed.load_optimizer_states(fresh, states)
    assert all(torch.equal(fresh.state_dict()["state"][i]["momentum_buffer"], b) for i, b in before.items())


@pytest.mark.parametrize("fusion", PackedWideResNet.FUSIONS)
@pytest.mark.parametrize("method, members", [
    ("kd-gaf", [(1, 1.0), (2, 1.0)]),                                # one teacher
    # two teachers (1 − α in float32 differs from float32(1 − α) at α 0.9: the members must not)
    ("kd2", [(1, 0.3), (2, 0.9), (1, 0.1), (2, 0.5)]),
    ("kd2-anneal-sp", [(1, 0.3), (2, 0.9), (1, 0.7)]),              # + annealing + SP
])
def test_each_member_after_one_epoch_is_its_solo_run(fold, tmp_path, monkeypatch, method, members, fusion):
    monkeypatch.setattr(students_module, "pack_models", lambda models: pack_models(models, fusion))
    train_annealing_starts(fold)
    solo = [student(fold, tmp_path / f"solo{k}", method, seed, alpha) for k, (seed, alpha) in enumerate(members)]
    for run in solo:
        train_students([run], CPU)
    packed = [student(fold, tmp_path / f"member{k}", method, seed, alpha, {"width": len(members), "member": k})
              for k, (seed, alpha) in enumerate(members)]
    metrics = train_students(packed, CPU)
    for k, (a, b) in enumerate(zip(solo, packed)):
        # one by one, a member computes its solo run's kernels: the same bits
        assert relative_difference(weights(a), weights(b)) <= TOLERANCE[fusion], k
        assert metrics[k]["config"]["pack"] == {"width": len(members), "member": k}
        assert json.loads(b.outputs["metrics"].read_text())["config"]["seed"] == members[k][0]
        solo_history = a.outputs["history"].read_text().splitlines()
        assert b.outputs["history"].read_text().splitlines()[0] == solo_history[0]
    # different seeds and α really are different runs
    assert relative_difference(weights(solo[0]), weights(solo[1])) > 1e-2


def test_a_gemm_packs_members_train_to_the_same_bits_at_any_width(fold, tmp_path, monkeypatch):
    monkeypatch.setattr(students_module, "pack_models", lambda models: pack_models(models, "gemm"))
    train_annealing_starts(fold)
    gemms = []
    monkeypatch.setattr(packed_module, "gemm_conv1d", lambda *a: gemms.append(a[-1]) or gemm_conv1d(*a))
    members = [(1, 0.3), (2, 0.9), (1, 0.7)]
    trained = {}
    for width in (2, 3):
        runs = [student(fold, tmp_path / f"pack{width}" / f"member{k}", "kd2-anneal-sp", seed, alpha,
                        {"width": width, "member": k}) for k, (seed, alpha) in enumerate(members[:width])]
        train_students(runs, CPU)
        trained[width] = [weights(run) for run in runs]
        assert gemms and set(gemms) == {width}          # the convolutions ran as GEMMs, K = width
        gemms.clear()
    for k in range(2):
        narrow, wide = trained[2][k], trained[3][k]
        assert set(narrow) == set(wide)
        assert all(torch.equal(narrow[n], wide[n]) for n in narrow), k
    assert relative_difference(trained[2][0], trained[2][1]) > 1e-2


def test_a_pack_wider_than_the_device_holds_trains_as_narrower_packs_with_the_same_results(
        fold, tmp_path, monkeypatch, caplog):
    """When the job's device memory holds only a narrower pack (gafkd.train.memory.pack_width_that_fits),
    the pack's runs train as consecutive narrower packs: each run in its own files, its planned
    pack in its record, and (on the CPU, member by member) the weights of the whole pack."""
    train_annealing_starts(fold)
    members = [(1, 0.3), (2, 0.9), (1, 0.7)]

    def pack(name):
        return [student(fold, tmp_path / name / f"member{k}", "kd2-anneal-sp", seed, alpha,
                        {"width": len(members), "member": k}) for k, (seed, alpha) in enumerate(members)]

    whole = pack("whole")
    train_students(whole, CPU)
    widths = []
    monkeypatch.setattr(students_module, "pack_width_that_fits", narrowing_packs_to(2, widths))
    narrower = pack("narrower")
    metrics = train_students(narrower, CPU)
    assert widths == [3, 2, 1]                 # the whole pack, then a pack of 2 and a run alone
    assert "its runs train in packs of 2, one after another" in caplog.text
    assert [m["config"]["pack"] for m in metrics] == [{"width": 3, "member": k} for k in range(3)]
    for a, b in zip(whole, narrower):
        mine, theirs = weights(a), weights(b)
        assert all(torch.equal(mine[name], theirs[name]) for name in mine)
        assert json.loads(b.outputs["metrics"].read_text())["config"]["alpha"] == a.settings["alpha"]


def test_a_pack_killed_mid_training_resumes_every_member(fold, tmp_path, monkeypatch):
    training = {**TRAINING, "epochs": 4, "checkpoint_every": 2}
    members = [(1, 0.3), (2, 0.7)]

    def pack(root):
        return [student(fold, root / f"member{k}", "kd2", seed, alpha, {"width": 2, "member": k}, training)
                for k, (seed, alpha) in enumerate(members)]

    reference = train_students(pack(tmp_path / "whole"), CPU)
    import gafkd.train.engine as engine
    evaluate, calls = engine.evaluate, [0]

    def killed_in_epoch_3(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 5:                               # epoch 3's validation
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_students(pack(tmp_path / "killed"), CPU)
    runs = pack(tmp_path / "killed")
    assert all(run.resume_path.exists() for run in runs)
    calls[0] = -100
    resumed = train_students(runs, CPU)
    assert calls[0] == -100 + 4                 # epochs 3 and 4 only: resumed after epoch 2
    for run, whole, again in zip(pack(tmp_path / "whole"), reference, resumed):
        killed = tmp_path / "killed" / run.outputs["model"].parent.name
        assert torch.equal(torch.load(run.outputs["model"], weights_only=True)["state_dict"]["fc.weight"],
                           torch.load(killed / "model", weights_only=True)["state_dict"]["fc.weight"])
        assert (killed / "history").read_text() == run.outputs["history"].read_text()
        assert again["test_at_best_val"] == whole["test_at_best_val"]
        assert not (killed / "resume.pt").exists()


def test_a_pack_replayed_from_graphs_is_the_eager_pack(fold, tmp_path, stand_in_graphs):
    """training.cuda_graphs on an SP pack (cached logits and similarity maps gathered by the batch
    index the graph reads), through the CPU stand-in graph (conftest.ReplayedStep)."""
    train_annealing_starts(fold)
    members = [(1, 0.3), (2, 0.9), (1, 0.7)]

    def pack(name, cuda_graphs):
        training = {**TRAINING, "epochs": 2, "cuda_graphs": cuda_graphs}
        return [student(fold, tmp_path / name / f"member{k}", "kd2-anneal-sp", seed, alpha,
                        {"width": len(members), "member": k}, training) for k, (seed, alpha) in enumerate(members)]

    eager, graphed = pack("eager", False), pack("graphed", True)
    train_students(eager, CPU)
    metrics = train_students(graphed, CPU)
    assert sum(graph.replays for graph in stand_in_graphs) == metrics[0]["cuda_graphs"]["replayed_steps"] > 0
    for a, b in zip(eager, graphed):
        mine, theirs = weights(a), weights(b)
        assert all(torch.equal(mine[name], theirs[name]) for name in mine)
        assert a.outputs["history"].read_text() == b.outputs["history"].read_text()


def test_runs_that_cannot_train_together_are_refused(fold, tmp_path):
    a = student(fold, tmp_path / "a", "kd2", 1, 0.3, {"width": 2, "member": 0})
    b = student(fold, tmp_path / "b", "kd2", 2, 0.5, {"width": 2, "member": 1}, {**TRAINING, "batch_size": 16})
    with pytest.raises(ConfigError, match="must share training"):
        train_students([a, b], CPU)


@pytest.mark.parametrize("config", ["config.yaml", "configs/gene14_w500.yaml", "configs/pamap2_loso.yaml"])
def test_the_grid_packs_only_runs_that_train_together(config):
    from conftest import REPO
    config = check_config_file(REPO / config)
    folds = {name: ["fold0", "fold1"] if spec["split"]["kind"] == "loso" else [spec["split"]["kind"]]
             for name, spec in config["datasets"].items()}
    packs = grid.student_packs(config, folds)
    assert packs and all(2 <= len(pack.runs) <= config["students"]["pack"] for pack in packs)
    packed = [run for pack in packs for run in pack.runs]
    assert len(packed) == len({tuple(sorted(run.items())) for run in packed})      # each run once
    for pack in packs:
        settings = [grid.student_settings(config, run) for run in pack.runs]
        for key in PACK_SHARED:
            assert len({json.dumps(s.get(key), sort_keys=True) for s in settings}) == 1, key
        assert {methods.pack_group(s) for s in settings} == {pack.group}
        assert [s["pack"] for s in settings] == [{"width": len(pack.runs), "member": k}
                                                 for k in range(len(pack.runs))]
        cells = {(s["method"], s["teachers"]) for s in settings}
        assert len({(s["method"], s["teachers"], s["seed"], s["alpha"]) for s in settings}) == len(settings)
        # SP runs hold their teachers' similarity caches: one grid cell a pack; the others pack across
        assert len(cells) == 1 or not any(methods.method(name).similarity for name, _ in cells)
        # a run that starts from another run never packs with it
        assert not ({"scratch"} & {name for name, _ in cells} and any(methods.method(name).starts_from for name, _ in cells))
    # runs derived from a teacher's run are never packed, nor trained at all
    assert not any(run["method"] == "scratch" and grid.same_run_teacher_dir(config, run) for run in packed)
    solo = {**config, "students": {**config["students"], "pack": 1}}
    assert grid.student_packs(solo, folds) == []
    run = packed[0]
    assert "pack" not in grid.student_settings(solo, run)


@pytest.mark.parametrize("fusion", PackedWideResNet.FUSIONS)
@pytest.mark.parametrize("standardize", [False, True])
def test_a_pack_across_grid_cells_trains_each_member_as_its_solo_run(fold, tmp_path, monkeypatch, fusion,
                                                                    standardize):
    """Runs of other methods and teachers in one pack (gafkd.methods.pack_group): a member without
    one of the two teachers weighs that teacher's term 0, exactly as its solo run leaves it out."""
    monkeypatch.setattr(students_module, "pack_models", lambda models: pack_models(models, fusion))
    monkeypatch.setitem(KD, "standardize_logits", standardize)
    members = [("kd-gaf", 1, 1.0), ("kd-sig", 2, 0.0), ("kd2", 1, 0.3), ("kd-sig", 1, 0.0), ("kd2", 2, 0.9)]
    solo = [student(fold, tmp_path / f"solo{k}", method, seed, alpha) for k, (method, seed, alpha) in enumerate(members)]
    solo_metrics = [train_students([run], CPU)[0] for run in solo]
    packed = [student(fold, tmp_path / f"member{k}", method, seed, alpha, {"width": len(members), "member": k})
              for k, (method, seed, alpha) in enumerate(members)]
    metrics = train_students(packed, CPU)
    for k, (a, b) in enumerate(zip(solo, packed)):
        assert relative_difference(weights(a), weights(b)) <= TOLERANCE[fusion], (k, members[k])
        assert metrics[k]["config"]["method"] == members[k][0]
        assert torch.load(b.outputs["model"], weights_only=True)["method"] == members[k][0]
        if fusion == "members":
            assert metrics[k]["test_at_best_val"] == solo_metrics[k]["test_at_best_val"]
    assert relative_difference(weights(solo[1]), weights(solo[3])) > 1e-2


def test_runs_of_other_pack_groups_are_refused(fold, tmp_path):
    train_annealing_starts(fold)
    plain = student(fold, tmp_path / "a", "kd2", 1, 0.3, {"width": 2, "member": 0})
    annealed = student(fold, tmp_path / "b", "kd2-anneal", 2, 0.5, {"width": 2, "member": 1})
    with pytest.raises(ConfigError, match=r"must share pack group \(wrn10-1-kd-from-scratch, not wrn10-1-kd\)"):
        train_students([plain, annealed], CPU)
