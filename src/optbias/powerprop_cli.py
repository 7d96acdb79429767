"""The ``optbias powerprop-*`` subcommands that the rules of workflow/rules/powerprop.smk call.

Kept apart from cli.py so the Powerprop experiment adds one line there. Heavy imports happen
inside each command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import fileio


def _spec(args: argparse.Namespace) -> dict:
    """``--spec`` JSON: method name and entry, experiment settings (``powerprop`` block), model."""
    return json.loads(args.spec)


def _method(args: argparse.Namespace) -> None:
    """Choose the method's lr on held-out data, then train every seed at it: one process, one torch start-up."""
    from .powerprop_runs import sweep_method, train_method

    s = _spec(args)
    selection = sweep_method(s["method"], s["method_cfg"], s["cfg"], s["model"], args.data)
    fileio.atomic_write_json(args.selected, selection)
    lr = selection["selected_lr"]
    scores = ", ".join(f"{c['lr']:g}: {c['score']:.4f}" for c in selection["candidates"])
    print(f"{s['method']}: validation accuracy by lr {{{scores}}} -> lr {lr:g}", flush=True)

    result = train_method(s["method"], s["method_cfg"], lr, s["cfg"], s["model"], args.data, args.checkpoints)
    fileio.atomic_write_json(args.output, result)
    for run in result["runs"]:
        if run["status"] == "ok":
            print(f"{s['method']} seed{run['seed']} lr {lr:g}: test accuracy {run['test_accuracy']:.4f}, "
                  f"near-zero fraction {run['sparsity_fraction']:.4f}, pruned {run['pruned_accuracy']}")
        else:
            print(f"{s['method']} seed{run['seed']}: {run['status']}: {run['error']}")


def _summary(args: argparse.Namespace) -> None:
    from .powerprop_runs import summarize

    results = [json.loads(Path(p).read_text()) for p in args.inputs]
    summary = summarize(results, args.order)
    summary["selection"] = {}
    for path in args.selected:
        sel = json.loads(Path(path).read_text())
        summary["selection"][sel["method"]] = {"selected_lr": sel["selected_lr"], "edge_of_grid": sel["edge_of_grid"],
                                               "candidates": sel["candidates"]}
    fileio.atomic_write_json(args.output, summary)


def _equivalence(args: argparse.Namespace) -> None:
    from .powerprop_equivalence import study
    from .powerprop_runs import single_task

    s = _spec(args)
    task = single_task(args.data)
    result = study(task.x_train, task.y_train, s["model"], s["cfg"])
    fileio.atomic_write_json(args.output, result)
    for form, entry in result["forms"].items():
        for alpha, a in entry["alphas"].items():
            print(f"{form} alpha={alpha}: gaps {['%.2e' % g for g in a['gaps']]} slope {a['slope']:.3f}")
        print(f"{form} alpha=1: {entry['alpha_one']}")


def _figure(args: argparse.Namespace) -> None:
    from . import powerprop_figures

    results = [json.loads(Path(p).read_text()) for p in args.inputs]
    draw = {"histograms": powerprop_figures.magnitude_histograms, "pruning": powerprop_figures.pruning_curves}
    draw[args.kind](results, args.order, args.out, args.title)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the powerprop-* subcommands on the main parser's subparsers."""
    spec_help = "JSON: {method, method_cfg, cfg (the config's powerprop block), model}"
    t = sub.add_parser("powerprop-method",
                       help="Powerprop experiment, one method: choose its lr on held-out data, then train, evaluate "
                            "and prune every seed at that lr")
    t.add_argument("--spec", required=True, help=spec_help)
    t.add_argument("--data", required=True)
    t.add_argument("--selected", required=True, help="JSON to write: every candidate lr's score and the choice")
    t.add_argument("--checkpoints", nargs="+", required=True, help="one plain state_dict path per seed, in seed order")
    t.add_argument("--output", required=True, help="JSON to write: every seed's accuracy, sparsity and pruning")
    t.set_defaults(func=_method)

    m = sub.add_parser("powerprop-summary", help="Powerprop experiment: per-method means and 95%% CIs over seeds")
    m.add_argument("--inputs", nargs="+", required=True)
    m.add_argument("--selected", nargs="+", required=True)
    m.add_argument("--order", nargs="+", required=True)
    m.add_argument("--output", required=True)
    m.set_defaults(func=_summary)

    e = sub.add_parser("powerprop-equivalence", help="gap between reparameterized and optimizer trajectories vs lr")
    e.add_argument("--spec", required=True, help="JSON: {cfg (the powerprop.equivalence block), model}")
    e.add_argument("--data", required=True)
    e.add_argument("--output", required=True)
    e.set_defaults(func=_equivalence)

    g = sub.add_parser("powerprop-figure", help="Powerprop figures: magnitude histograms or pruning curves")
    g.add_argument("kind", choices=["histograms", "pruning"])
    g.add_argument("--inputs", nargs="+", required=True)
    g.add_argument("--order", nargs="+", required=True)
    g.add_argument("--out", nargs="+", required=True)
    g.add_argument("--title", default="")
    g.set_defaults(func=_figure)
