import dataclasses
import importlib.util

import pytest
import torch

from optbias import optim
from optbias.optim import registry

REQUIRED_EXTRAS = {"powerprop_sgd": {"alpha": 2.0}, "powerprop_adam": {"alpha": 2.0}}  # no default
# Types whose extra package (their row's ``needs``) this environment lacks: an environment not installed
# from requirements.lock (tests/test_lock.py fails there too, saying how to reinstall).
UNAVAILABLE = {t for t, row in registry.TYPES.items() if row.needs and importlib.util.find_spec(row.needs) is None}


def test_registry_builds_each_known_type():
    for name in optim.known():
        if name in UNAVAILABLE:
            continue
        model = torch.nn.Linear(4, 3)
        opt = optim.build({"type": name, "lr": 1e-3, **REQUIRED_EXTRAS.get(name, {})}, model.parameters(), name,
                          model=model)  # as training builds it (OWM and Memory Shampoo hook the model)
        assert isinstance(opt, torch.optim.Optimizer)
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()


def test_adam_entries_differ_only_by_lr():
    model = torch.nn.Linear(2, 2)
    a = optim.build({"type": "adam", "lr": 1e-3}, model.parameters())
    b = optim.build({"type": "adam", "lr": 1e-4}, model.parameters())
    assert type(a) is torch.optim.Adam and a.defaults["lr"] == 1e-3 and b.defaults["lr"] == 1e-4
    assert a.defaults["weight_decay"] == 0  # "adam" means no decay; adamw is the decoupled one


def test_unknown_type_lists_known_ones():
    with pytest.raises(optim.OptimizerConfigError, match="optimizers.mine: unknown optimizer type 'lion'; known types: "
                       "adagrad, adam, adamw, memory_shampoo, muon, owm, powerprop_adam, powerprop_sgd, psgd_kron, sgd, shampoo, soap; "
                       "or an installed optimizer class by its import path, e.g. torch.optim.NAdam"):
        optim.check("mine", {"type": "lion", "lr": 1e-4})


def test_a_type_whose_extra_package_is_missing_says_which_before_anything_runs(monkeypatch):
    """psgd_kron needs opt_einsum (its row's ``needs``); without it the check stops, naming the entry and the fix."""
    assert registry.TYPES["psgd_kron"].needs == "opt_einsum"
    monkeypatch.setitem(registry.TYPES, "psgd_kron",
                        dataclasses.replace(registry.TYPES["psgd_kron"], needs="no_such_module_xyz", needs_why="why"))
    with pytest.raises(optim.OptimizerConfigError,
                       match=r"optimizers.kron: psgd_kron needs the package no_such_module_xyz, which is not installed: "
                             r"why. Install it: pip install -r requirements.lock"):
        optim.check("kron", {"type": "psgd_kron", "lr": 1e-3})


def test_unknown_hyperparameter_is_named():
    with pytest.raises(optim.OptimizerConfigError, match="adamw does not take nesterov"):
        optim.check("x", {"type": "adamw", "lr": 1e-3, "nesterov": True})


def test_ablation_seeds_must_be_headline_seeds():
    """The ablation reuses the base optimizer's headline runs, so it cannot ask for other seeds."""
    from optbias import config as C

    cfg = {"dataset": "mnist-5k", "benchmarks": {"permuted": {}}, "seeds": [0, 1],
           "optimizers": {"shampoo": {"type": "shampoo", "lr": 0.01}},
           "ablation": {"base": "shampoo", "seeds": [0, 1], "variants": {"shampoo-diag": {"optimizer": {"max_precond_dim": 1}}}}}
    C.check(cfg)
    cfg["ablation"]["seeds"] = [0, 7]
    with pytest.raises(C.ConfigError, match=r"ablation.seeds: \[7\] not in seeds \[0, 1\]"):
        C.check(cfg)


def test_signatures_read_from_source_equal_the_imported_ones():
    """check() reads constructor signatures without importing torch; they must be the real ones."""
    from optbias.optim import registry

    for name in registry.known():
        from_source = registry._parameters_from_source(*registry.TYPES[name].cls.split(":"))
        assert from_source is not None, name  # every built-in type is read from source, no import
        assert tuple(from_source) == tuple(registry._parameters_from_import(registry.resolve(name))), name


def test_a_reexport_is_followed_and_an_inherited_constructor_is_imported(monkeypatch, tmp_path):
    from optbias.optim import registry

    # torch.optim re-exports SGD from torch.optim.sgd: followed in the source, nothing imported.
    monkeypatch.setitem(registry.TYPES, "sgd_reexported", registry.OptimizerType("torch.optim:SGD"))
    assert registry._parameters_from_source("torch.optim", "SGD") is not None
    assert registry.hyperparameters("sgd_reexported") == registry.hyperparameters("sgd")
    # A class that inherits its __init__ says nothing in its source: the class is imported instead.
    (tmp_path / "my_optimizers.py").write_text("import torch\n\n\nclass Child(torch.optim.SGD):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.TYPES, "child", registry.OptimizerType("my_optimizers:Child"))
    assert registry._parameters_from_source("my_optimizers", "Child") is None
    assert registry.hyperparameters("child") == registry.hyperparameters("sgd")
    with pytest.raises(registry.OptimizerConfigError, match="child does not take betas"):
        registry.check("c", {"type": "child", "lr": 0.1, "betas": (0.9, 0.99)})


def test_each_type_is_one_row_and_the_derived_answers_follow_it():
    """A type's class, step cost, batching and extra package live in its one row of ``TYPES``."""
    for name, row in registry.TYPES.items():
        assert isinstance(row, optim.OptimizerType), name
        for path in filter(None, (row.cls, row.stacked)):
            module, _, cls = path.partition(":")
            assert registry._class_from_source(module, cls) is not None, (name, path)  # found without importing
        assert row.step_cost > 0 and not (row.elementwise and row.stacked), name
    assert optim.BATCHABLE == {name for name, row in registry.TYPES.items() if row.batchable}
    assert {name for name, row in registry.TYPES.items() if row.stacked} == {"shampoo"}
    assert optim.relative_step_cost("adam") == 1.0 and optim.relative_step_cost("torch.optim.NAdam") == 1.0
    assert optim.relative_step_cost("shampoo") == registry.TYPES["shampoo"].step_cost > 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.TYPES["sgd"].step_cost = 2.0  # a row is changed by replacing it, in one place
