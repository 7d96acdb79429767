"""Claim 9's noise floor: the batch-order seed rule (optbias.continual.settings), the controls the
config derives from `noise_floor` (optbias.config), and that every existing run's spec stays the
same text (no new key, no default) when the block and the new settings exist."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from conftest import REPO, TINY_CONFIG
from optbias import config as C
from optbias import data
from optbias.continual import batched, settings, train
from optbias.models import init_model

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def test_the_seed_rule_keeps_every_existing_runs_order_and_moves_by_a_prime_stride():
    assert settings.batch_seed(0) == 1 and settings.batch_seed(7, 0) == 8  # seed + 1, as before
    assert settings.batch_seed(3, 1) == 3 + 1 + 1_000_003 and settings.batch_seed(3, 2) == 3 + 1 + 2_000_006
    assert settings.run_batch_seed({"seed": 4, "train": {}}) == 5
    assert settings.run_batch_seed({"seed": 4, "train": {"batch_order": 1}}) == 1_000_008
    # no control of a seed below the stride draws another seed's own order
    assert not {settings.batch_seed(s, 1) for s in range(2000)} & {settings.batch_seed(s) for s in range(2000)}
    with pytest.raises(ValueError, match="negative"):
        settings.batch_seed(0, -1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist-5k.pt"
    data.fetch("mnist-5k", path, {})
    return path


def spec(seed=0, batch_order=None, batch_seeds=False):
    extra = {} if batch_order is None else {"batch_order": batch_order}
    return {"benchmark": "class_incremental", "optimizer": "sgd", "optimizer_cfg": {"type": "sgd", "lr": 0.05},
            "seed": seed, "benchmark_cfg": {"epochs_per_task": 1, "batch_size": 128, "pairs": [[0, 1], [2, 3]]},
            "model": {"hidden": [16]},
            "train": {"device": "cpu", "threads": 1, "reset_optimizer": False, "loss_log_every": 2,
                      "batch_seeds": batch_seeds, **extra}}


class Seen(Exception):
    """Raised by the spy once it has seen the first epoch: nothing else is needed."""


def first_epoch(monkeypatch, s, dataset):
    """The model's weights and the batch order of the first epoch of ``train_run(s)`` (not trained further)."""
    seen = {}

    def spy(model, optimizer, x, y, batch_size, generator, step, after_step, regularizer=None):
        twin = torch.Generator().manual_seed(0)
        twin.set_state(generator.get_state())
        seen.update(weights={k: v.clone() for k, v in model.state_dict().items()},
                    order=torch.randperm(len(y), generator=twin))
        raise Seen

    monkeypatch.setattr(train, "run_epoch", spy)
    with pytest.raises(Seen):
        train.train_run(s, dataset, progress=False)
    return seen


def test_another_batch_order_starts_from_the_same_weights_and_draws_other_batches(dataset, monkeypatch):
    own, other = first_epoch(monkeypatch, spec(), dataset), first_epoch(monkeypatch, spec(batch_order=1), dataset)
    init = init_model(0, {"hidden": [16]}).state_dict()
    assert all(torch.equal(own["weights"][k], other["weights"][k]) and torch.equal(own["weights"][k], init[k])
               for k in init)
    assert not torch.equal(own["order"], other["order"])
    n = len(own["order"])
    assert torch.equal(own["order"], torch.randperm(n, generator=torch.Generator().manual_seed(1)))  # seed + 1
    assert torch.equal(other["order"], torch.randperm(n, generator=torch.Generator().manual_seed(1 + 1_000_003)))


def test_a_whole_run_with_another_batch_order_ends_elsewhere(dataset):
    a = train.train_run(spec(), dataset, progress=False)
    b = train.train_run(spec(batch_order=1), dataset, progress=False)
    assert a["loss_curve"]["loss"] != b["loss_curve"]["loss"] and a["steps"] == b["steps"]
    assert b["spec"]["train"]["batch_order"] == 1 and "batch_order" not in a["spec"]["train"]


def test_batched_seeds_draw_the_same_orders_as_the_runs_one_by_one(dataset, monkeypatch):
    """The batched mode's generators come from the same rule (settings.run_batch_seed)."""
    specs = [spec(seed, batch_order=2, batch_seeds=True) for seed in (0, 1)]
    assert batched.plan(specs) is None
    seen = {}

    def spy(params, buffers, grad_fn, optimizer, x, y, batch_size, generators, step, after_step):
        seen["orders"] = [torch.randperm(len(y), generator=g) for g in generators]
        raise Seen

    monkeypatch.setattr(batched, "run_epoch_batched", spy)
    with pytest.raises(Seen):
        batched.train_batched(specs, dataset, [None, None], [None, None], progress=False)
    n = len(seen["orders"][0])
    for seed, order in zip((0, 1), seen["orders"]):
        gen = torch.Generator().manual_seed(seed + 1 + 2 * 1_000_003)
        assert torch.equal(order, torch.randperm(n, generator=gen))


# ---- the config


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    C.validate(config, SCHEMA)
    return config


def test_the_noise_floor_block_derives_one_control_per_headline_optimizer():
    config = validated({**TINY_CONFIG, "noise_floor": {"batch_order": 1}})
    controls = C.noise_floor_controls(config)
    assert controls == {"sgd-reorder": "sgd", "adam-1e-3-reorder": "adam-1e-3", "shampoo-reorder": "shampoo"}
    entries = C.optimizer_entries(config)
    assert list(entries)[-3:] == list(controls)  # after the headline optimizers and the ablation variants
    for control, headline in controls.items():
        assert entries[control] == entries[headline]
        assert C.train_overrides(config, control) == {**C.train_overrides(config, headline), "batch_order": 1}
    for name in [*config["optimizers"], *config["ablation"]["variants"]]:
        assert "batch_order" not in C.train_overrides(config, name)


def test_without_the_block_there_are_no_controls_and_no_new_train_keys():
    config = validated(TINY_CONFIG)
    assert C.noise_floor_controls(config) == {}
    assert list(C.optimizer_entries(config)) == ["sgd", "adam-1e-3", "shampoo", "shampoo-diag", "shampoo-reset"]
    assert set(config["train"]) == {"device", "threads", "reset_optimizer", "loss_log_every", "batch_seeds"}
    with_block = validated({**TINY_CONFIG, "noise_floor": {"batch_order": 3}})
    for name in C.optimizer_entries(config):  # the block changes no existing entry's settings
        assert C.train_overrides(with_block, name) == C.train_overrides(config, name)
        assert C.optimizer_entries(with_block)[name] == C.optimizer_entries(config)[name]


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(noise_floor={"batch_order": 0}), "noise_floor.batch_order: 0 is less than the minimum of 1"),
    (lambda c: c.update(noise_floor={}), "noise_floor.batch_order: missing (required)"),
    (lambda c: c["train"].update(batch_order=-2), "train.batch_order: -2 is less than the minimum of 1"),
    (lambda c: c["train"].update(batch_order="1"), "train.batch_order: '1' is text, not an integer: write 1 without quotes"),
    (lambda c: c["train"].update(reset_preconditioner="yes"), "train.reset_preconditioner: 'yes' is text, not true or false"),
    (lambda c: (c["train"].update(batch_order=1), c.update(noise_floor={"batch_order": 1})),
     "noise_floor.batch_order: 1 is the headline runs' own batch order"),
    (lambda c: c["ablation"]["variants"].update({"shampoo-x": {"optimizer": {"type": "adam"},
                                                               "train": {"reset_preconditioner": True}}}),
     "ablation.variants.shampoo-x: train.reset_preconditioner is true, but optimizer type 'adam' has no "
     "reset_preconditioner() method"),
    (lambda c: c["ablation"]["variants"].update({"shampoo-x": {"train": {"batch_order": -1}}}),
     "ablation.variants.shampoo-x: train.batch_order is -1; give an integer >= 1"),
    (lambda c: c["train"].update(reset_preconditioner=True),
     "train (optimizers.sgd): train.reset_preconditioner is true, but optimizer type 'sgd'"),
    (lambda c: (c.update(noise_floor={"batch_order": 1}),
                c["ablation"]["variants"].update({"sgd-reorder": {"optimizer": {}}})),
     "noise_floor: the control of 'sgd' is named 'sgd-reorder', a name already used"),
])
def test_bad_settings_stop_the_config_naming_the_key(change, message):
    config = copy.deepcopy(TINY_CONFIG)
    change(config)
    with pytest.raises(C.ConfigError, match=re.escape(message)):
        C.validate(config, SCHEMA)


def test_the_ablation_variant_that_resets_the_statistics_is_accepted():
    config = copy.deepcopy(TINY_CONFIG)
    config["ablation"]["variants"]["shampoo-reset-stats"] = {"train": {"reset_preconditioner": True}}
    config = validated(config)
    assert C.train_overrides(config, "shampoo-reset-stats")["reset_preconditioner"] is True
    assert "reset_preconditioner" not in C.train_overrides(config, "shampoo-reset")


def test_the_default_config_declares_the_floor_and_the_variant():
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["noise_floor"] == {"batch_order": 1}
    assert config["ablation"]["variants"]["shampoo-reset-stats"] == {"train": {"reset_preconditioner": True}}
    config = validated(config)
    assert set(C.noise_floor_controls(config).values()) == set(config["optimizers"])
