"""Extending the comparison (issue 15): any installed optimizer by its import path in the config,
the composite Muon + AdamW entry, and an optimizer added by config alone going through the DAG."""

from __future__ import annotations

import copy
import inspect
import io
import json
import re
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import REPO, TINY_CONFIG, scheduled, snakemake, write_config
from optbias import optim
from optbias.continual import runio
from optbias.models import MLP
from optbias.optim import registry
from optbias.optim.composite import Float32Muon, MuonAdamW, newton_schulz

NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)  # Jordan's, torch.optim.Muon's default


def steps(model: torch.nn.Module, opt: torch.optim.Optimizer, n: int, seed: int = 0) -> None:
    """``n`` training steps of ``model`` on fixed random MNIST-shaped batches."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x, y = torch.rand(32, 784, generator=g), torch.randint(0, 10, (32,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


# ---- an installed optimizer by import path


@pytest.mark.parametrize("path, cls", [("torch.optim.NAdam", torch.optim.NAdam),
                                       ("torch.optim.nadam.NAdam", torch.optim.NAdam),
                                       ("pytorch_optimizer.Lion", None)])
def test_an_import_path_builds_the_class_it_names_with_the_entry_as_keywords(path, cls):
    import pytorch_optimizer

    cls = cls or pytorch_optimizer.Lion
    model = MLP(784, [16], 10)
    opt = optim.build({"type": path, "lr": 3e-4, "weight_decay": 0.01}, model.parameters(), "mine")
    assert type(opt) is cls and opt.defaults["lr"] == 3e-4 and opt.defaults["weight_decay"] == 0.01
    before = [p.clone() for p in model.parameters()]
    steps(model, opt, 1)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_an_import_path_is_checked_against_its_constructor_signature():
    names = [n for n in inspect.signature(torch.optim.NAdam.__init__).parameters if n not in ("self", "params")]
    assert registry.hyperparameters("torch.optim.NAdam") == names
    with pytest.raises(optim.OptimizerConfigError, match=r"optimizers.nadam: torch.optim.NAdam does not take "
                                                         r"nesterov; remove it, or use what it takes: lr, betas"):
        optim.check("nadam", {"type": "torch.optim.NAdam", "lr": 1e-3, "nesterov": True})
    # Lion's constructor ends in **kwargs, which swallows anything: a misspelt key is still refused
    assert "kwargs" not in registry.hyperparameters("pytorch_optimizer.Lion")
    with pytest.raises(optim.OptimizerConfigError, match="optimizers.lion: pytorch_optimizer.Lion does not take beta"):
        optim.check("lion", {"type": "pytorch_optimizer.Lion", "lr": 1e-4, "beta": [0.9, 0.99]})
    # a required hyperparameter without a default, by import path as by registry name
    with pytest.raises(optim.OptimizerConfigError,
                       match=r"optimizers.pp: optbias.optim.powerprop.PowerpropSGD needs alpha \(no default\); add"):
        optim.check("pp", {"type": "optbias.optim.powerprop.PowerpropSGD", "lr": 0.1})


@pytest.mark.parametrize("path, message", [
    ("torch.optim.NAdamm", "optimizers.bad: cannot import torch.optim.NAdamm: torch.optim has no attribute NAdamm. "
                           "Check the spelling (package.module.Class, e.g. torch.optim.NAdam), install the package"),
    ("no_such_package.optim.Fast", "optimizers.bad: cannot import no_such_package.optim.Fast: no module named "
                                   "no_such_package. Check the spelling"),
    ("torch..NAdam", "optimizers.bad: cannot import torch..NAdam: 'torch..NAdam' is not an import path"),
    ("torch.nn.Linear", "optimizers.bad: torch.nn.Linear is not an optimizer: class torch.nn.modules.linear.Linear "
                        "does not derive from torch.optim.Optimizer. Give a torch.optim.Optimizer subclass "
                        "(e.g. torch.optim.NAdam) or a registry type (adagrad, adam,"),
    ("torch.optim", "optimizers.bad: torch.optim is not an optimizer: it is a module, not a class"),
    ("torch.optim.adam.adam", "optimizers.bad: torch.optim.adam.adam is not an optimizer: it is a function"),
])
def test_a_bad_import_path_names_the_entry_what_is_wrong_and_the_fix(path, message):
    with pytest.raises(optim.OptimizerConfigError) as err:
        optim.check("bad", {"type": path, "lr": 1e-3})
    assert str(err.value).startswith(message), str(err.value)
    with pytest.raises(optim.OptimizerConfigError, match=r"^optimizers.bad: "):  # build refuses it the same way
        optim.build({"type": path, "lr": 1e-3}, MLP(784, [4], 10).parameters(), "bad")


def test_registry_types_are_checked_without_importing_torch_and_import_paths_import_it():
    """Parsing the Snakefile stays fast for registry types; an import path pays for its import."""
    code = ("import importlib.util, sys\nfrom optbias.optim import registry\n"
            "for t in registry.known():\n"
            "    if registry.TYPES[t].needs and importlib.util.find_spec(registry.TYPES[t].needs) is None:\n"
            "        continue  # an environment not installed from the lock\n"
            "    extra = {'alpha': 2.0} if t.startswith('powerprop') else {}\n"
            "    registry.check(t, {'type': t, 'lr': 0.1, **extra})\n"
            "print('torch' in sys.modules)\n"
            "registry.check('nadam', {'type': 'torch.optim.NAdam', 'lr': 0.1})\n"
            "print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


# ---- Muon on the hidden weights, AdamW on the rest (optbias.optim.composite)


def test_muon_gets_exactly_the_hidden_weights_and_adamw_the_biases_and_head():
    model = MLP(784, [32, 16], 10)
    opt = optim.build({"type": "muon", "lr": 0.02, "adamw_lr": 1e-3}, model.parameters(), "muon")
    muon, adamw = opt.param_groups
    assert [id(p) for p in muon["params"]] == [id(layer.weight) for layer in model.hidden_layers]
    rest = [layer.bias for layer in model.hidden_layers] + [model.head.weight, model.head.bias]
    assert sorted(map(id, adamw["params"])) == sorted(map(id, rest))
    assert muon["lr"] == 0.02 and adamw["lr"] == 1e-3 and "betas" in adamw and "ns_steps" in muon
    before = [p.clone() for p in model.parameters()]
    steps(model, opt, 2)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # the groups are the children's: a change of lr reaches them (lr 0 freezes the hidden weights)
    opt.param_groups[0]["lr"] = 0.0
    frozen = [p.clone() for p in muon["params"]]
    steps(model, opt, 1, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(frozen, muon["params"]))


def test_a_model_with_one_matrix_gives_it_to_adamw_and_param_groups_are_refused():
    layer = torch.nn.Linear(4, 3)
    opt = MuonAdamW(layer.parameters())
    assert len(opt.param_groups) == 1 and "betas" in opt.param_groups[0]  # the only matrix is the head
    with pytest.raises(TypeError, match="not param groups"):
        MuonAdamW([{"params": list(layer.parameters())}])
    with pytest.raises(ValueError, match="ns_dtype must be one of float32, bfloat16"):
        MuonAdamW(layer.parameters(), ns_dtype="float16")


def test_newton_schulz_keeps_the_singular_vectors_and_brings_the_singular_values_near_one():
    torch.manual_seed(0)
    for shape in [(32, 64), (64, 32), (16, 784)]:
        g = torch.randn(*shape) * torch.logspace(-2, 1, shape[1])  # singular values over 3 decades
        x = newton_schulz(g, NS_COEFFICIENTS, 5, 1e-7, torch.float32)
        u, _, vh = torch.linalg.svd(g, full_matrices=False)
        d = u.T @ x @ vh.T  # diagonal when x = U S' Vᵀ
        assert x.shape == g.shape and x.dtype == torch.float32
        assert float((d - torch.diag(torch.diag(d))).norm() / d.norm()) < 1e-4
        s = torch.linalg.svdvals(x)
        assert 0.5 < float(s.median()) and float(s.max()) < 1.5, s


def test_float32_muon_is_torch_muon_but_for_the_iteration_dtype():
    """With the iteration in bfloat16, Float32Muon's steps equal torch.optim.Muon's bit for bit, for
    every learning-rate scaling and with decay; in float32 they stay close."""

    class BFloat16Muon(Float32Muon):
        ns_dtype = torch.bfloat16

    for kwargs in ({}, {"weight_decay": 0.1, "nesterov": False}, {"adjust_lr_fn": "match_rms_adamw"},
                   {"adjust_lr_fn": "spectral_unclamped"}):
        torch.manual_seed(0)
        weights = [torch.randn(24, 40) for _ in range(3)]
        twins = {cls: [torch.nn.Parameter(w.clone()) for w in weights]
                 for cls in (torch.optim.Muon, BFloat16Muon, Float32Muon)}
        opts = {cls: cls(ps, lr=0.02, **kwargs) for cls, ps in twins.items()}
        for k in range(3):
            grads = [torch.randn(24, 40, generator=torch.Generator().manual_seed(10 * k + j)) for j in range(3)]
            for cls, ps in twins.items():
                for p, g in zip(ps, grads):
                    p.grad = g.clone()
                opts[cls].step()
        for w, a, b, c in zip(weights, *(map(torch.Tensor.detach, ps) for ps in twins.values())):
            assert torch.equal(a, b), kwargs
            assert float((c - a).norm() / (a - w).norm()) < 0.1, kwargs  # of the distance travelled


@pytest.mark.parametrize("entry", [{"type": "muon", "lr": 0.02}, {"type": "muon", "lr": 0.02, "ns_dtype": "bfloat16"}])
def test_muon_state_dict_round_trips_through_a_resume_file(entry):
    """What resume does: state_dict -> torch.save -> torch.load(weights_only) -> restore_optimizer."""
    torch.manual_seed(0)
    model = MLP(784, [32], 10)
    opt = optim.build(entry, model.parameters())
    steps(model, opt, 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    twin, fresh = MLP(784, [32], 10), MLP(784, [32], 10)
    twin.load_state_dict(saved["model"])
    fresh.load_state_dict(saved["model"])
    twin_opt, fresh_opt = optim.build(entry, twin.parameters()), optim.build(entry, fresh.parameters())
    runio.restore_optimizer(twin_opt, saved["optimizer"])
    assert twin_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for m, o in ((model, opt), (twin, twin_opt), (fresh, fresh_opt)):
        steps(m, o, 3, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))  # the state matters


# ---- an optimizer added by config alone, through the DAG


def nadam_config() -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config["optimizers"]["nadam"] = {"type": "torch.optim.NAdam", "lr": 1.0e-3}
    config["sweep"]["lrs"]["nadam"] = [1.0e-3, 3.0e-3]
    return config


def readers(log: str) -> dict[str, str]:
    """The dry run's jobs that write a figure or a summary: first output -> the job's Reason line
    (the missing outputs, then the inputs that other jobs make)."""
    prefix = "Reason: Missing output files: "
    return {line[len(prefix):].split(",")[0].split(";")[0]: line for line in log.splitlines()
            if line.startswith(prefix) and line[len(prefix):].startswith(("figures/", "data/summary/", "data/metrics/"))}


def test_an_optimizer_added_by_config_alone_is_swept_trained_probed_and_drawn(tmp_path):
    before = tmp_path / "before"
    write_config(before, copy.deepcopy(TINY_CONFIG))
    base = scheduled(snakemake(before, "-n", check=True).stdout)
    after = tmp_path / "after"
    write_config(after, nadam_config())
    proc = snakemake(after, "-n", check=True)
    log = proc.stdout + proc.stderr
    jobs = scheduled(log)
    # one more job per benchmark for training, each new sweep candidate and each budget: 2 benchmarks
    assert jobs["train"] == base["train"] + 2
    assert jobs["sweep_train"] == base["sweep_train"] + 2 * 2
    assert jobs["budget_validation"] == base["budget_validation"] + 2 and jobs["budget_train"] == base["budget_train"] + 2
    assert {k: v for k, v in jobs.items() if k not in ("train", "sweep_train", "budget_validation", "budget_train")} \
        == {k: v for k, v in base.items() if k not in ("train", "sweep_train", "budget_validation", "budget_train")}
    for benchmark in TINY_CONFIG["benchmarks"]:
        assert f"train {benchmark}/nadam: 2 seeds" in log
        assert f"learning-rate sweep {benchmark}/nadam lr 0.003: 2 validation seeds" in log
        assert f"data/probes/{benchmark}/nadam/seed1/probes.json" in log  # the probe job writes its probes
    # every figure and summary job reads nadam's runs or probes, or a file made from them; only the
    # Shampoo ablation's do not
    jobs_reading = readers(log)
    indirect = ("data/sweep/selected.json", "data/summary/budget_sensitivity.json")
    unread = sorted(out for out, line in jobs_reading.items() if "nadam" not in line and not line.endswith(indirect))
    assert len(jobs_reading) >= 15 and len(unread) == 2 and all("shampoo_ablation" in out for out in unread), unread


@pytest.mark.parametrize("entry, message", [
    ({"type": "torch.optim.NoSuchOptimizer", "lr": 1e-3},
     "optimizers.bad: cannot import torch.optim.NoSuchOptimizer: torch.optim has no attribute NoSuchOptimizer"),
    ({"type": "torch.nn.Linear", "lr": 1e-3},
     "optimizers.bad: torch.nn.Linear is not an optimizer: class torch.nn.modules.linear.Linear does not derive "
     "from torch.optim.Optimizer"),
    ({"type": "torch.optim.NAdam", "lr": 1e-3, "nesterov": True},
     "optimizers.bad: torch.optim.NAdam does not take nesterov; remove it, or use what it takes: lr, betas"),
])
def test_a_bad_import_path_entry_stops_snakemake_before_any_job_naming_it(tmp_path, entry, message):
    config = copy.deepcopy(TINY_CONFIG)
    config["optimizers"]["bad"] = entry
    write_config(tmp_path, config)
    proc = snakemake(tmp_path, "-n")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert scheduled(proc.stdout) == {} and not (tmp_path / "data").exists()


# ---- the worked example of docs/extending.md (section "Worked example: NAdam"; the README links to it)

EXTENDING = REPO / "docs/extending.md"
OPTIMIZERS = REPO / "docs/optimizers.md"


def docs_example() -> tuple[dict, dict[str, int], str]:
    """The worked example's three blocks: the config lines (parsed), the `snakemake -n` job table
    (rule -> count, the total checked) and the claim (YAML text of one list item)."""
    text = EXTENDING.read_text()
    section = text.split("## Worked example: NAdam", 1)[1].split("\n## ", 1)[0]
    blocks = [textwrap.dedent(b) for b in re.findall(r"^ *```(?:yaml)?\n(.*?)^ *```", section, flags=re.S | re.M)]
    assert len(blocks) == 3, blocks
    lines, table, claim = blocks
    rows = [line.split() for line in table.splitlines()[2:] if line.strip()]
    jobs = {rule: int(n) for rule, n in rows[:-1]}
    assert rows[-1][0] == "total" and int(rows[-1][1]) == sum(jobs.values())
    return yaml.safe_load(lines), jobs, claim


def dag_jobs(workdir) -> tuple[dict[int, str], dict[int, set[int]]]:
    """`snakemake -n --dag`: job id -> label (rule and wildcards), job id -> the jobs that read its outputs."""
    dot = snakemake(workdir, "-n", "--dag", check=True).stdout
    labels = {int(i): label for i, label in re.findall(r'^\s*(\d+)\[label = "(.*?)"', dot, flags=re.M)}
    readers: dict[int, set[int]] = {i: set() for i in labels}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M):
        readers[int(a)].add(int(b))
    return labels, readers


def test_docs_worked_example_lists_exactly_the_new_jobs(tmp_path):
    """Step 2: the job table of docs/extending.md is what adding step 1's lines to the default config schedules on
    a finished run: every job of `nadam` (a wildcard optimizer: nadam) and every job downstream of
    one, counted per rule from the DAG of the default config."""
    lines, jobs, _ = docs_example()
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert set(lines) == {"optimizers", "sweep"} and set(lines["sweep"]) == {"lrs"}
    config["optimizers"].update(lines["optimizers"])
    config["sweep"]["lrs"].update(lines["sweep"]["lrs"])
    write_config(tmp_path, config)
    labels, readers = dag_jobs(tmp_path)
    todo = [i for i, label in labels.items() if "\\noptimizer: nadam" in label]
    assert todo, "no job of nadam in the DAG"
    reached = set()
    while todo:
        job = todo.pop()
        if job not in reached:
            reached.add(job)
            todo.extend(readers[job])
    counts: dict[str, int] = {}
    for job in reached:
        rule = labels[job].split("\\n")[0]
        counts[rule] = counts.get(rule, 0) + 1
    assert counts == jobs


@pytest.mark.slow
def test_a_tiny_run_with_an_added_optimizer_puts_it_in_every_summary_and_figure(tmp_path):
    """The whole default DAG at a tiny size with `nadam` added by config (about 40 s on 2 cores), and
    the example claim of docs/extending.md about it (step 3) audited and cited in a report."""
    _, _, claim = docs_example()
    (tmp_path / "claims.yaml").write_text("claims:\n" + claim)
    (tmp_path / "source.md").write_text("# NAdam\n\nNAdam forgets less than AdamW [claim:N1].\n")
    (tmp_path / "variables.yaml").write_text("{}\n")
    workdir = tmp_path / "run"
    config = {k: copy.deepcopy(v) for k, v in TINY_CONFIG.items() if k not in ("sweep", "budget", "ablation")}
    config.update(seeds=[0, 1], model={"hidden": [16]},
                  benchmarks={"permuted": {"n_tasks": 2, "epochs_per_task": 1, "batch_size": 128, "permutation_seed": 0}},
                  optimizers={"sgd": {"type": "sgd", "lr": 0.05}, "adamw": {"type": "adamw", "lr": 1e-3},
                              "nadam": {"type": "torch.optim.NAdam", "lr": 1e-3}},
                  paper={**{k: str(tmp_path / f"{k}.{ext}") for k, ext in
                            (("claims", "yaml"), ("source", "md"), ("variables", "yaml"))},
                         "explore": {"a": "nadam", "b": "adamw"}})
    write_config(workdir, config)
    proc = snakemake(workdir, "--cores", "2", check=True)
    assert scheduled(proc.stdout + proc.stderr)["train"] == 3
    summary = json.loads((workdir / "data/summary/permuted.json").read_text())
    assert summary["order"] == ["sgd", "adamw", "nadam"] and set(summary["optimizers"]) == set(summary["order"])
    audit = json.loads((workdir / "data/audit.json").read_text())
    [row] = audit["claims"]
    assert row["id"] == "N1" and row["verdict"] in ("SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE")
    assert [c["case"] for c in row["cases"]] == ["nadam - adamw"] and len(row["cases"][0]["ci95"]) == 2
    assert 'href="#claim-N1"' in (workdir / "paper/build/paper.html").read_text()
    assert "a = 'nadam'" in (workdir / "paper/build/explore.ipynb").read_text()  # the notebook compares it too
    probes = (workdir / "data/summary/probes_permuted.json").read_text()
    assert "nadam" in probes and "nadam" in (workdir / "data/summary/weight_distance.json").read_text()
    assert "nadam" in (workdir / "data/metrics/headline.json").read_text()
    assert (workdir / "data/metrics/curves/permuted/nadam.csv").is_file()
    for stem in ("accuracy_matrices_permuted", "permuted_first_task_accuracy", "effective_rank", "probe_vs_head_accuracy"):
        assert (workdir / f"figures/{stem}.pdf").read_bytes()[:4] == b"%PDF", stem
    # nothing left to do, and `snakemake -n` of the same config agrees
    assert scheduled(snakemake(workdir, "-n", check=True).stdout) == {}


def test_the_docs_name_every_registry_type():
    """docs/optimizers.md (linked from the README) names every registry type, in backticks."""
    page = OPTIMIZERS.read_text()
    missing = [t for t in registry.known() if f"`{t}`" not in page]
    assert not missing, f"docs/optimizers.md does not name the registry types {missing}"
