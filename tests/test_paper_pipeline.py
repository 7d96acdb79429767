"""End-to-end: a tiny config with every optimizer the claims name, through audit and paper, in snakemake."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_CONFIG, TINY_PP, snakemake, write_config
from test_paper import browser_check

pytestmark = pytest.mark.slow


def paper_config() -> dict:
    """The smallest config that holds every optimizer, sweep entry and ablation variant of paper/claims.yaml."""
    import copy

    config = copy.deepcopy(TINY_CONFIG)
    config["model"] = {"hidden": [16]}
    config["benchmarks"]["permuted"]["n_tasks"] = 2
    config["optimizers"] = {"sgd": {"type": "sgd", "lr": 0.05}, "adamw": {"type": "adamw", "lr": 1.0e-3, "weight_decay": 1.0e-2},
                            "adam-1e-3": {"type": "adam", "lr": 1.0e-3}, "adam-1e-4": {"type": "adam", "lr": 1.0e-4},
                            "shampoo": {"type": "shampoo", "lr": 0.05}}
    config["sweep"]["lrs"] = {"sgd": [0.05], "adamw": [1.0e-3], "shampoo": [0.05], "shampoo-nograft": [0.3]}
    config["ablation"] = {"base": "shampoo", "seeds": [0], "variants": {
        "shampoo-ema": {"optimizer": {"statistics": "ema", "beta2": 0.999}},
        "shampoo-diag": {"optimizer": {"max_precond_dim": 1}},
        "shampoo-nograft": {"optimizer": {"grafting": "none", "lr": 0.3}},
        "shampoo-reset": {"train": {"reset_optimizer": True}}}}
    pp = copy.deepcopy(TINY_PP)  # the Powerprop methods and equivalence cases the claims name
    pp["seeds"] = [0]
    pp["methods"] = {"sgd": {"optimizer": {"type": "sgd"}, "lrs": [0.3]},
                     "adamw": {"optimizer": {"type": "adamw", "weight_decay": 1.0e-2}, "lrs": [3.0e-3]},
                     **{f"reparam-a{a}": {"optimizer": {"type": "sgd"}, "reparam_alpha": a, "lrs": [1.0]} for a in (2, 3)},
                     **{f"ppsgd-a{a}": {"optimizer": {"type": "powerprop_sgd", "alpha": a}, "lrs": [1.0]} for a in (2, 3)}}
    pp["equivalence"]["alphas"] = [2, 3]
    config["powerprop"] = pp
    config["paper"] = {"claims": "paper/claims.yaml", "source": "paper/paper.md", "variables": "paper/variables.yaml"}
    return config


def test_default_target_ends_with_the_audit_and_the_rendered_paper(tmp_path):
    write_config(tmp_path, paper_config())
    snakemake(tmp_path, "--cores", "2", check=True, timeout=1200)
    audit = json.loads((tmp_path / "data/audit.json").read_text())
    assert len(audit["claims"]) >= 14 and sum(audit["counts"].values()) == len(audit["claims"])
    assert all(row["verdict"] in ("SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE") for row in audit["claims"])
    # one candidate lr per optimizer: every selection is at the edge of its (one-point) grid
    assert next(r for r in audit["claims"] if r["id"] == "S2")["verdict"] == "NOT SUPPORTED"
    page = (tmp_path / "paper/build/paper.html").read_text()
    assert "{{" not in page and "[claim:" not in page
    for row in audit["claims"]:
        assert f'href="#claim-{row["id"]}"' in page and f'id="claim-{row["id"]}"' in page
    report = snakemake(tmp_path, "--report", "report.zip", check=True)
    assert (tmp_path / "report.zip").stat().st_size > 10_000, report.stderr
    dry = snakemake(tmp_path, "-n", check=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    check = browser_check(page, tmp_path)  # last: skips where Chromium is not installed
    assert check["images"] == check["shown"] >= 6 and check["placeholders"] is False
