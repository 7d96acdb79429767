"""Command-line entry points that the Snakemake rules call (``python -m optbias <command>``).

Each command is a thin wrapper: parse arguments, call the library, exit non-zero with a one-line
message on a known error (bad config, bad data, divergence) instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import fileio  # the library modules are imported by the commands that need them: a summary,
                      # figure or paper job starts in a fraction of a second instead of loading torch

# Figure kind -> plotting function in optbias.figures (imported lazily: seaborn is slow to load
# and the training jobs do not need it). Each takes (loaded input JSONs, order, output paths, title).
FIGURES = {
    "final-accuracy": "final_accuracy_per_task",
    "first-task-accuracy": "first_task_accuracy",
    "accuracy-matrices": "accuracy_matrices",
    "lr-sweep": "lr_sweep",
    "shampoo-ablation": "shampoo_ablation",
}
# Errors that end a command with a one-line message instead of a traceback: (module, class). A module
# that was never imported cannot have raised its error, so it is not imported to check.
# ValueError covers ConfigError, OptimizerConfigError, ClaimError and PaperError.
KNOWN_ERRORS = (("builtins", "ValueError"), ("optbias.data", "DataError"), ("optbias.train", "DivergenceError"),
                ("optbias.pull", "PullError"))


def is_known_error(err: BaseException) -> bool:
    return any(module in sys.modules and isinstance(err, getattr(sys.modules[module], name))
               for module, name in KNOWN_ERRORS)


def _fetch(args: argparse.Namespace) -> None:
    from . import data

    manifest = data.fetch(args.dataset, args.output, json.loads(args.cfg))
    print(json.dumps(manifest, indent=2))


def _report_run(result: dict) -> None:
    if result["status"] != "ok":
        print(f"{result['status']}: {result['error']}", flush=True)  # the error names the run
        return
    print(f"{result['benchmark']}/{result['optimizer']}/seed{result['seed']}: average accuracy "
          f"{result['average_accuracy']:.4f}, average forgetting {result['average_forgetting']:.4f}, "
          f"BWT {result['bwt']:.4f}, {result['timing']['wall_time_s']:.1f} s on {result['device']}", flush=True)


def _train(args: argparse.Namespace) -> None:
    from . import train

    specs = json.loads(args.spec)
    train.train_runs(specs if isinstance(specs, list) else [specs], args.data, args.metrics, args.checkpoints,
                     progress=not args.no_progress, report=_report_run)


def _load_metrics(paths: list[str]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def _summarize(args: argparse.Namespace) -> None:
    from .summary import summarize_runs

    fileio.atomic_write_json(args.output, summarize_runs(_load_metrics(args.metrics), args.order))


def _sweep_select(args: argparse.Namespace) -> None:
    from .sweep import select

    fileio.atomic_write_json(args.output, select(_load_metrics(args.metrics), json.loads(args.config_lrs)))


def _ablation_summary(args: argparse.Namespace) -> None:
    from .summary import ablation_table, summarize_by_benchmark

    result = summarize_by_benchmark(_load_metrics(args.metrics), args.order)
    fileio.atomic_write_json(args.output, result)
    fileio.atomic_write_bytes(args.table, ablation_table(result).encode())


def _perf_shampoo(args: argparse.Namespace) -> None:
    from .perf import report

    result = report(args.hidden, args.batch, args.steps, args.threads, update_freq=args.update_freq)
    for key, value in result.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")


def _track(args: argparse.Namespace) -> None:
    from . import tracking

    fileio.atomic_write_json(args.headline, tracking.headline(_load_metrics(args.summaries)))
    for (benchmark, optimizer), rows in tracking.curves(_load_metrics(args.metrics)).items():
        fileio.atomic_write_bytes(Path(args.curves) / benchmark / f"{optimizer}.csv", tracking.to_csv(rows).encode())


def _pull(args: argparse.Namespace) -> None:
    from .pull import pull

    pull(".", remote=args.remote, force=args.force)
# --- probes (issue 4): one contiguous block -------------------------------------------------
PROBE_FIGURES = {
    "cosine-heatmaps": "cosine_heatmaps",
    "effective-rank": "effective_rank_curves",
    "probe-vs-head": "probe_vs_head",
    "paper-figure": "paper_figure",
}


def _probe(args: argparse.Namespace) -> None:
    from .probe_run import probe_runs, settings

    probe_runs(args.metrics, args.checkpoints, args.output, args.data, settings({"probes": json.loads(args.settings)}))


def _probe_summary(args: argparse.Namespace) -> None:
    from .probe_summary import summarize_probes

    fileio.atomic_write_json(args.output, summarize_probes(_load_metrics(args.probes), args.order))


def _probe_figure(args: argparse.Namespace) -> None:
    from . import probe_figures

    draw = getattr(probe_figures, PROBE_FIGURES[args.kind])
    runs = _load_metrics(args.probes)
    if args.kind == "paper-figure":
        if not args.metrics:
            raise ValueError("the paper figure needs --metrics (the runs' metrics.json) for its accuracy panel")
        draw(runs, _load_metrics(args.metrics), args.order, args.out, args.title)
    else:
        draw(runs, args.order, args.out, args.title)


def _add_probe_commands(sub) -> None:
    r = sub.add_parser("probe", help="probe every checkpoint of one or more runs (ranks, cosine, linear probes)")
    r.add_argument("--data", required=True, help="the dataset file the runs trained on")
    r.add_argument("--metrics", nargs="+", required=True, help="each run's metrics.json (R and the run's spec)")
    r.add_argument("--checkpoints", nargs="+", required=True, help="each run's checkpoints directory, same order")
    r.add_argument("--output", nargs="+", required=True, help="each run's probes.json to write, same order")
    r.add_argument("--settings", default="{}", help="JSON: the config's probes block (defaults: optbias.probe_run)")
    r.set_defaults(func=_probe)

    s = sub.add_parser("probe-summary", help="per-optimizer final-checkpoint probe scalars with 95%% CIs")
    s.add_argument("--probes", nargs="+", required=True)
    s.add_argument("--order", nargs="+", required=True)
    s.add_argument("--output", required=True)
    s.set_defaults(func=_probe_summary)

    f = sub.add_parser("probe-figure", help="draw one probe figure from probes.json files")
    f.add_argument("kind", choices=sorted(PROBE_FIGURES))
    f.add_argument("--probes", nargs="+", required=True)
    f.add_argument("--metrics", nargs="*", default=[], help="metrics.json files (paper-figure only)")
    f.add_argument("--order", nargs="+", required=True, help="optimizers, in legend order")
    f.add_argument("--out", nargs="+", required=True, help="output files; .pdf or .png picks the format")
    f.add_argument("--title", default="")
    f.set_defaults(func=_probe_figure)
# --- end of probes block -------------------------------------------------------------------
def _weight_distance(args: argparse.Namespace) -> None:
    from .weight_distance import weight_distances

    result = weight_distances(_load_metrics(args.metrics), args.checkpoints, args.order)
    fileio.atomic_write_json(args.output, result)
    for benchmark in (k for k in result if isinstance(result[k], dict)):
        pairs = ", ".join(f"{p} {v['mean']:.3f}" for p, v in result[benchmark]["pairs"].items())
        print(f"{benchmark}: ||w_a - w_b|| / ||w_0||: {pairs}")


def _audit(args: argparse.Namespace) -> None:
    from .claims import audit, audit_markdown, load_claims

    result = audit(load_claims(args.claims), json.loads(args.rule_outputs), args.root)
    fileio.atomic_write_json(args.output_json, result)
    fileio.atomic_write_bytes(args.output_md, audit_markdown(result).encode())
    print(", ".join(f"{n} {v}" for v, n in result["counts"].items()))


def _paper(args: argparse.Namespace) -> None:
    from .paper import build

    page = build(args.source, args.variables, args.audit_json, args.audit_md, json.loads(args.config), args.root)
    fileio.atomic_write_bytes(args.output, page.encode())


def _figure(args: argparse.Namespace) -> None:
    from . import figures

    getattr(figures, FIGURES[args.kind])(_load_metrics(args.inputs), args.order, args.out, args.title)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optbias", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fetch", help="fetch a dataset into one verified tensor file")
    f.add_argument("--dataset", required=True, help="a name in optbias.data.SOURCES (mnist-5k: the offline default)")
    f.add_argument("--output", required=True)
    f.add_argument("--cfg", default="{}", help="JSON: the config's data section")
    f.set_defaults(func=_fetch)

    t = sub.add_parser("train", help="train runs (benchmark, optimizer, seed), one after another in this process")
    t.add_argument("--spec", required=True,
                   help="JSON run spec (see optbias.train.train_run), or a JSON list of them")
    t.add_argument("--data", required=True)
    t.add_argument("--metrics", nargs="+", required=True,
                   help="one metrics JSON per spec, in order (each written last, when its run is complete)")
    t.add_argument("--checkpoints", nargs="+",
                   help="one directory per spec for task{i}.pt state_dicts (none written if omitted)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_train)

    s = sub.add_parser("summarize", help="per-optimizer means and 95%% CIs over seeds")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--order", nargs="+", required=True)
    s.add_argument("--output", required=True)
    s.set_defaults(func=_summarize)

    w = sub.add_parser("sweep-select", help="choose each swept optimizer's learning rate")
    w.add_argument("--metrics", nargs="+", required=True)
    w.add_argument("--config-lrs", required=True, help="JSON: optimizer -> the lr the config uses")
    w.add_argument("--output", required=True)
    w.set_defaults(func=_sweep_select)

    a = sub.add_parser("ablation-summary", help="per-benchmark summaries of the Shampoo ablation")
    a.add_argument("--metrics", nargs="+", required=True)
    a.add_argument("--order", nargs="+", required=True)
    a.add_argument("--output", required=True)
    a.add_argument("--table", required=True, help="Markdown table to write")
    a.set_defaults(func=_ablation_summary)

    b = sub.add_parser("perf-shampoo", help="Shampoo step time / AdamW step time, and where the time goes")
    b.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--steps", type=int, default=60)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--update-freq", type=int, default=10)
    b.set_defaults(func=_perf_shampoo)

    d = sub.add_parser("track", help="the small DVC-versioned files: headline metrics and curves")
    d.add_argument("--summaries", nargs="+", required=True, help="data/summary/{benchmark}.json files")
    d.add_argument("--metrics", nargs="+", required=True, help="the runs' metrics.json files")
    d.add_argument("--headline", required=True, help="headline JSON to write (DVC metrics)")
    d.add_argument("--curves", required=True, help="directory for {benchmark}/{optimizer}.csv (DVC plots)")
    d.set_defaults(func=_track)

    u = sub.add_parser("pull", help="dvc pull the data and checkpoints, then fix timestamps so nothing retrains")
    u.add_argument("--remote", help="DVC remote to pull from (default: the one set in .dvc/config)")
    u.add_argument("--force", action="store_true", help="touch the pulled outputs even if `dvc status` is not clean")
    u.set_defaults(func=_pull)
    c = sub.add_parser("audit", help="evaluate paper/claims.yaml on the pipeline outputs")
    c.add_argument("--claims", required=True)
    c.add_argument("--rule-outputs", required=True, help="JSON: rule -> its output patterns (from the workflow)")
    c.add_argument("--root", default=".", help="directory the claims' outputs are relative to")
    c.add_argument("--output-md", required=True)
    c.add_argument("--output-json", required=True)
    c.set_defaults(func=_audit)

    r = sub.add_parser("paper", help="render the paper's Markdown to HTML with every placeholder filled")
    r.add_argument("--source", required=True)
    r.add_argument("--variables", required=True)
    r.add_argument("--audit-json", required=True)
    r.add_argument("--audit-md", required=True)
    r.add_argument("--config", default="{}", help="JSON: the workflow config ({{ config.* }} placeholders)")
    r.add_argument("--root", default=".")
    r.add_argument("--output", required=True)
    r.set_defaults(func=_paper)

    w = sub.add_parser("weight-distance", help="relative L2 distance between optimizers' final weights, per seed")
    w.add_argument("--metrics", nargs="+", required=True, help="each run's metrics.json")
    w.add_argument("--checkpoints", nargs="+", required=True, help="each run's checkpoints directory, same order")
    w.add_argument("--order", nargs="+", required=True, help="optimizers, in legend order (pairs follow it)")
    w.add_argument("--output", required=True)
    w.set_defaults(func=_weight_distance)

    g = sub.add_parser("figure", help="draw one figure from JSON inputs (metrics or summaries)")
    g.add_argument("kind", choices=sorted(FIGURES))
    g.add_argument("--inputs", nargs="+", required=True)
    g.add_argument("--order", nargs="+", help="optimizers, in legend order")
    g.add_argument("--out", nargs="+", required=True, help="output files; .pdf or .png picks the format")
    g.add_argument("--title", default="")
    g.set_defaults(func=_figure)

    from .powerprop_cli import add_commands as add_powerprop_commands  # the Powerprop experiment

    add_powerprop_commands(sub)
    _add_probe_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except Exception as err:
        if not is_known_error(err):
            raise
        print(f"optbias {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
