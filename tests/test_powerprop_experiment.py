"""The Powerprop experiment: registry entries, config errors, the equivalence output, the runner,
the summary, and an end-to-end snakemake run of a tiny powerprop block."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import TINY_PP
from optbias import config as config_mod
from optbias import data, optim
from optbias.models import MLP
from optbias.optim.powerprop import PowerpropAdam, PowerpropSGD
from optbias.powerprop import equivalence as powerprop_equivalence
from optbias.powerprop import runs as powerprop_runs
from optbias.powerprop import summary as powerprop_summary


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


# --------------------------------------------------------------------------- registry and config
def test_registry_builds_the_powerprop_optimizers():
    model = torch.nn.Linear(3, 2)
    assert isinstance(optim.build({"type": "powerprop_sgd", "lr": 0.1, "alpha": 2}, model.parameters()), PowerpropSGD)
    assert isinstance(optim.build({"type": "powerprop_adam", "lr": 1e-3, "alpha": 3}, model.parameters()), PowerpropAdam)


def test_missing_alpha_is_named_with_the_fix():
    with pytest.raises(optim.OptimizerConfigError, match=r"optimizers\.pp: powerprop_sgd needs alpha \(no default\)"):
        optim.check("pp", {"type": "powerprop_sgd", "lr": 0.1})
    # ... also through the main config check (the `optimizers:` block) ...
    cfg = {"dataset": "mnist-5k", "benchmarks": {}, "optimizers": {"pp": {"type": "powerprop_adam", "lr": 1e-3}}}
    with pytest.raises(config_mod.ConfigError, match="powerprop_adam needs alpha"):
        config_mod.check(cfg)
    # ... and through the powerprop block, naming the method
    pp = copy.deepcopy(TINY_PP)
    pp["methods"]["ppsgd-a2"]["optimizer"] = {"type": "powerprop_sgd"}
    with pytest.raises(config_mod.ConfigError, match=r"powerprop\.methods\.ppsgd-a2.*needs alpha"):
        config_mod.check_powerprop(pp)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda pp: pp["methods"]["sgd"]["optimizer"].update(lr=0.1), "remove lr"),
    (lambda pp: pp["methods"]["sgd"]["optimizer"].update(type="lion"), "unknown optimizer type 'lion'"),
    (lambda pp: pp.update(prune_fractions=[0.9, 0.5]), "increasing"),
    (lambda pp: pp["methods"]["reparam-a2"].update(reparam_alpha=0.5), "reparam_alpha"),
])
def test_bad_powerprop_block_is_named(edit, match):
    pp = copy.deepcopy(TINY_PP)
    edit(pp)
    with pytest.raises(config_mod.ConfigError, match=match):
        config_mod.check_powerprop(pp)


def test_method_forms():
    m = TINY_PP["methods"]
    assert [powerprop_runs.form(m[k]) for k in ("sgd", "reparam-a2", "ppsgd-a2")] == \
        ["baseline", "reparameterized", "powerprop optimizer"]


# --------------------------------------------------------------------------- equivalence output
def test_equivalence_study_reports_first_order_and_exact_alpha_one():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(200, 30, generator=gen), torch.randint(0, 10, (200,), generator=gen)
    cfg = {"alphas": [2, 3], "steps": 5, "batch_size": 16, "seed": 0, "threads": 1,
           "sgd_lrs": [0.01, 0.02, 0.04, 0.08], "adam_lrs": [4e-5, 2e-5, 1e-5]}
    out = powerprop_equivalence.study(x, y, {"hidden": [16, 16]}, cfg)
    sgd = out["forms"]["sgd"]
    assert sgd["lrs"] == [0.08, 0.04, 0.02, 0.01]  # largest first
    for alpha in ("2", "3"):
        entry = sgd["alphas"][alpha]
        assert entry["monotone"] and 0.8 <= entry["slope"] <= 1.2, entry
        assert entry["slope"] == pytest.approx(powerprop_equivalence.loglog_slope(sgd["lrs"], entry["gaps"]))
        assert 1.8 <= entry["abs_slope"] <= 2.2, entry  # the O(eta^2) error itself
        assert 0.8 <= out["forms"]["adam"]["alphas"][alpha]["slope"] <= 1.2, out["forms"]["adam"]
    for form in ("sgd", "adam"):
        assert out["forms"][form]["alpha_one"] == {"reparam_vs_plain": 0.0, "optimizer_vs_plain": 0.0}


def test_loglog_slope_on_exact_power_laws():
    lrs = [0.1, 0.05, 0.025]
    assert powerprop_equivalence.loglog_slope(lrs, [3 * lr for lr in lrs]) == pytest.approx(1.0)
    assert powerprop_equivalence.loglog_slope(lrs, [7 * lr**2 for lr in lrs]) == pytest.approx(2.0)


def test_minibatches_refuse_more_data_than_there_is():
    with pytest.raises(ValueError, match="exceed"):
        powerprop_equivalence.minibatches(torch.zeros(10, 3), torch.zeros(10, dtype=torch.long), 3, 4, 0)


# --------------------------------------------------------------------------- the runner
def test_train_method_saves_plain_checkpoints_that_reproduce_the_metrics(dataset, tmp_path):
    method = TINY_PP["methods"]["reparam-a2"]
    ckpts = [tmp_path / "seed0.pt", tmp_path / "seed1.pt"]
    out = powerprop_runs.train_method("reparam-a2", method, 1.0, TINY_PP, {"hidden": [16]}, dataset, ckpts)
    assert out["form"] == "reparameterized" and [r["seed"] for r in out["runs"]] == [0, 1]
    task = powerprop_runs.single_task(dataset)
    assert sorted(task.classes) == list(range(10)) and len(task.y_train) == 4000 and len(task.y_test) == 1000
    for run, ckpt in zip(out["runs"], ckpts):
        assert run["status"] == "ok"
        sd = torch.load(ckpt, weights_only=True)
        plain = MLP(784, [16], 10)
        plain.load_state_dict(sd, strict=True)  # plain keys: every tool sees the same model class
        again = powerprop_runs.evaluate(sd, {"hidden": [16]}, task, [0, 0.5, 0.9], 1e-3)
        assert again["test_accuracy"] == run["test_accuracy"] == run["pruned_accuracy"]["0"]
        assert again["sparsity_fraction"] == run["sparsity_fraction"]
        assert run["test_accuracy"] > 0.3  # 32 steps of a slowed-down optimizer: well above chance (0.1)
        assert sum(run["histogram"]["counts"]) + run["histogram"]["underflow"] + run["histogram"]["overflow"] \
            == 784 * 16 + 16 * 10
    # the α = 1 reparameterization is SGD, bit for bit
    a = powerprop_runs.train_method("sgd", TINY_PP["methods"]["sgd"], 0.3, {**TINY_PP, "seeds": [0]}, {"hidden": [16]},
                                    dataset, [tmp_path / "sgd.pt"])
    b = powerprop_runs.train_method("reparam-a1", TINY_PP["methods"]["reparam-a1"], 0.3, {**TINY_PP, "seeds": [0]},
                                    {"hidden": [16]}, dataset, [tmp_path / "a1.pt"])
    assert a["runs"][0]["loss_curve"] == b["runs"][0]["loss_curve"]
    sa, sb = torch.load(tmp_path / "sgd.pt", weights_only=True), torch.load(tmp_path / "a1.pt", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sweep_picks_the_best_validation_score_and_records_divergence(dataset):
    # α = 3: the step grows like |w|^(4/3)·lr, so a large lr blows the weights up to inf/NaN
    method = {"optimizer": {"type": "powerprop_sgd", "alpha": 3}, "lrs": [1.0, 1.0e4]}
    out = powerprop_runs.sweep_method("ppsgd-a3", method, TINY_PP, {"hidden": [16]}, dataset)
    runs = {(r["lr"], r["seed"]): r for r in out["runs"]}
    assert len(runs) == 4 and out["seeds"] == [1000, 1001]  # every candidate on every validation seed
    assert runs[(1.0e4, 1000)]["status"] == "diverged" and runs[(1.0, 1001)]["status"] == "ok"
    assert "powerprop sweep ppsgd-a3 lr=10000 seed1000" in runs[(1.0e4, 1000)]["error"]
    assert out["selected_lr"] == 1.0 and out["selected_has_diverged_seed"] is False
    assert runs[(1.0, 1000)]["validation_score"] > 0.1 and runs[(1.0, 1000)] != runs[(1.0, 1001)]
    big = next(c for c in out["candidates"] if c["lr"] == 1.0e4)
    assert big["score"] == 0.0 and big["eligible"] is False


def test_summary_means_and_cis():
    def result(name, accs, sparse):
        return {"method": name, "method_cfg": {"optimizer": {"type": "sgd"}}, "form": "baseline", "lr": 0.1,
                "task": "all-digits",
                "sparsity_threshold": 1e-3, "prune_fractions": [0, 0.5],
                "runs": [{"seed": i, "status": "ok", "test_accuracy": a, "sparsity_fraction": s,
                          "pruned_accuracy": {"0": a, "0.5": a / 2}} for i, (a, s) in enumerate(zip(accs, sparse))]
                + [{"seed": 9, "status": "diverged"}]}
    def selection(name, lr):
        return {"method": name, "selected_lr": lr, "edge_of_grid": False, "candidates": [{"lr": lr, "score": 0.5}]}

    out = powerprop_summary.summarize([result("b", [0.8, 0.9], [0.1, 0.3]), result("a", [0.5, 0.7], [0.0, 0.0])],
                                      [selection("a", 0.1), selection("b", 0.3)], ["a", "b"])
    assert out["order"] == ["a", "b"] and out["selection"]["b"]["selected_lr"] == 0.3
    b = out["methods"]["b"]
    assert b["test_accuracy"]["mean"] == pytest.approx(0.85) and b["test_accuracy"]["per_seed"] == [0.8, 0.9]
    assert b["sparsity_fraction"]["mean"] == pytest.approx(0.2)
    assert b["pruned_accuracy"]["0.5"]["mean"] == pytest.approx(0.425)
    low, high = b["test_accuracy"]["ci95"]  # Student-t: 0.85 +- t_{0.975, 1} x 0.05 (s / sqrt(2) = 0.05)
    assert (low, high) == pytest.approx((0.85 - 12.706204736174705 * 0.05, 0.85 + 12.706204736174705 * 0.05))
    assert b["seeds"] == [0, 1] and b["diverged_seeds"] == [9]
    with pytest.raises(ValueError, match="no results for c"):
        powerprop_summary.summarize([result("a", [0.5], [0.0])], [], ["a", "c"])


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_powerprop_pipeline_end_to_end(tmp_path):
    from conftest import TINY_CONFIG, snakemake, write_config

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["powerprop"] = copy.deepcopy(TINY_PP)
    write_config(tmp_path, cfg)
    targets = ["data/summary/powerprop.json", "data/powerprop/equivalence.json",
               "figures/powerprop_weight_magnitudes.pdf", "figures/powerprop_pruning.pdf"]
    dry = snakemake(tmp_path, "-n", "--quiet", "rules", check=True)
    assert "powerprop_method" in dry.stdout + dry.stderr
    snakemake(tmp_path, "--cores", "2", *targets, check=True)
    summary = json.loads((tmp_path / "data/summary/powerprop.json").read_text())
    assert summary["order"] == list(TINY_PP["methods"])
    for name, entry in summary["methods"].items():
        assert entry["seeds"] == [0, 1] and set(entry["pruned_accuracy"]) == {"0", "0.5", "0.9"}
        assert 0 <= entry["sparsity_fraction"]["mean"] <= 1
        assert entry["lr"] == summary["selection"][name]["selected_lr"]
    assert summary["methods"]["sgd"]["test_accuracy"] == summary["methods"]["reparam-a1"]["test_accuracy"]
    for stem in ("powerprop_weight_magnitudes", "powerprop_pruning"):
        assert (tmp_path / f"figures/{stem}.pdf").read_bytes()[:4] == b"%PDF"
        assert (tmp_path / f"figures/{stem}.png").stat().st_size > 10_000
    equivalence = json.loads((tmp_path / "data/powerprop/equivalence.json").read_text())
    assert set(equivalence["forms"]) == {"sgd", "adam"}
    assert equivalence["forms"]["sgd"]["alpha_one"] == {"reparam_vs_plain": 0.0, "optimizer_vs_plain": 0.0}
    assert 0.8 <= equivalence["forms"]["sgd"]["alphas"]["2"]["slope"] <= 1.2
    ckpt = torch.load(tmp_path / "data/powerprop/runs/reparam-a2/seed1.pt", weights_only=True)
    MLP(784, TINY_CONFIG["model"]["hidden"], 10).load_state_dict(ckpt, strict=True)
    # a missing alpha stops the workflow before any job, naming the method
    cfg["powerprop"]["methods"]["ppsgd-a2"]["optimizer"] = {"type": "powerprop_sgd"}
    write_config(tmp_path, cfg)
    bad = snakemake(tmp_path, "-n")
    assert bad.returncode != 0 and "ppsgd-a2" in bad.stderr + bad.stdout and "needs alpha" in bad.stderr + bad.stdout
