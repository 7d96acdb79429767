"""The ``optbias`` command: what a user runs by hand, outside the pipeline.

The pipeline's rules do not go through here: each calls its library function from a script of
``workflow/scripts/`` (see ``optbias.job``). These commands are the ones a person types:

* ``optbias pull``: fetch the versioned data and checkpoints with DVC, so nothing retrains;
* ``optbias perf-shampoo``: Shampoo's step time against AdamW's, and where the time goes;
* ``optbias bench``: the eight performance figures (ratios, and the whole run against its compute bound), written to docs/performance.md;
* ``optbias compare``: your headline metrics and verdicts against a committed revision's;
* ``optbias runs``: every Snakemake invocation in a working directory (a run resumed over several,
  such as ``make fashion``), their summed wall time and the job time per stage;
* ``optbias retrain``: train finished runs again with the code here and say whether every field of
  their metrics.json is reproduced (exit 1 when one is not);
* ``optbias dvc-deps``: each DVC stage's code deps, what its rules read (``--check``: exit 1 when
  dvc.yaml differs, naming what to add or remove);
* ``optbias readme``: rewrite README.md's results block from paper/verdicts.json and
  docs/performance.json (``--check``: exit 1 when it is stale, change nothing).

A known error (``optbias.job.KNOWN_ERRORS``) ends the command with a one-line message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .job import is_known_error


def _pull(args: argparse.Namespace) -> None:
    from .versioning.pull import pull

    pull(".", remote=args.remote, force=args.force)


def _perf_shampoo(args: argparse.Namespace) -> None:
    from .perf.step import report

    result = report(args.hidden, args.batch, args.steps, args.threads, update_freq=args.update_freq)
    for key, value in result.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")


def _bench(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .perf.bench import main

    main(Path(args.config), Path(args.workdir), None if args.output == "-" else Path(args.output), args.steps,
         tuple(args.epochs), args.peak_n)


def _dvc_deps(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .versioning import deps

    root = Path(args.root)
    if args.check:
        problems = deps.check(root)
        print("\n".join(problems) if problems else "dvc.yaml: every stage's code deps are what its rules read")
        return 1 if problems else 0
    for stage, paths in deps.expected(root).items():
        print(f"{stage}:\n" + "".join(f"  - {p}\n" for p in paths), end="")
    return 0


def _print_and_write(text: str, output: str) -> None:
    """A command's Markdown page: printed, and written atomically to ``output`` unless it is '-'."""
    from .fileio import atomic_write_bytes

    print(text)
    if output != "-":
        atomic_write_bytes(output, text.encode())


def _runs(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .perf.runlog import runs_markdown

    _print_and_write(runs_markdown(Path(args.workdir)), args.output)


def _retrain(args: argparse.Namespace) -> int:
    import shlex

    from .versioning.retrain import retrain_all, retrain_markdown

    rows = retrain_all(args.metrics, args.data, progress=lambda line: print(line, flush=True))
    command = ["optbias", "retrain", *args.metrics, *(["--data", args.data] if args.data else []),
               *(["--output", args.output] if args.output != "-" else [])]
    _print_and_write(retrain_markdown(rows, shlex.join(command)), args.output)
    return 0 if all(r["identical"] for r in rows) else 1


def _compare(args: argparse.Namespace) -> int:
    from .versioning.compare import compare

    return compare(".", rev=args.rev)


def _readme(args: argparse.Namespace) -> int:
    from .versioning import readme

    if args.check:
        if readme.check(args.root):
            return 0
        print(f"optbias readme: {readme.README}'s results block is stale: run `optbias readme` and commit it",
              file=sys.stderr)
        return 1
    print(f"{readme.README}: results block " + ("rewritten" if readme.write(args.root) else "already up to date"))
    return 0


def _markdown_output(p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int | None]) -> None:
    """The end of a subcommand whose result is a Markdown page (``_print_and_write``): ``--output``, and ``func``."""
    p.add_argument("--output", default="-", help="markdown file to write as well (default '-': print only)")
    p.set_defaults(func=func)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optbias", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    u = sub.add_parser("pull", help="dvc pull the data and checkpoints, then fix timestamps so nothing retrains")
    u.add_argument("--remote", help="DVC remote to pull from (default: the one set in .dvc/config)")
    u.add_argument("--force", action="store_true", help="touch the pulled outputs even if `dvc status` is not clean")
    u.set_defaults(func=_pull)

    b = sub.add_parser("perf-shampoo", help="Shampoo step time / AdamW step time, and where the time goes")
    b.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="MLP widths (default: the embedded config's)")
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--steps", type=int, default=60)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--update-freq", type=int, default=10)
    b.set_defaults(func=_perf_shampoo)

    n = sub.add_parser("bench", help="the performance figures as ratios from one run -> docs/performance.md")
    n.add_argument("--config", default="config/config.yaml", help="the config whose model and optimizers are timed")
    n.add_argument("--workdir", default=".", help="where the last `make reproduce` left .snakemake/log and benchmarks/")
    n.add_argument("--output", default="docs/performance.md", help="markdown to write ('-': print only); "
                   "the raw numbers go next to it as .json")
    n.add_argument("--steps", type=int, default=100, help="timed optimizer steps per Shampoo variant")
    n.add_argument("--epochs", type=int, nargs=2, default=[2, 20], metavar=("LOW", "HIGH"),
                   help="the two budgets (epochs per task) whose difference gives the marginal throughput")
    n.add_argument("--peak-n", type=int, default=2048, help="matrix size of the matmul peak measurement")
    n.set_defaults(func=_bench)

    c = sub.add_parser("compare", help="your headline metrics and claim verdicts against a revision's (exit 1: a verdict differs)")
    c.add_argument("--rev", default="HEAD", help="the git revision to compare with (default: HEAD, what you cloned)")
    c.set_defaults(func=_compare)

    r = sub.add_parser("runs", help="every Snakemake invocation in a working directory, their summed wall time, job time per stage")
    r.add_argument("--workdir", default=".", help="the pipeline's working directory (its .snakemake/log and benchmarks/)")
    _markdown_output(r, _runs)

    t = sub.add_parser("retrain", help="train finished runs again here and compare their metrics.json (exit 1: one differs)")
    t.add_argument("metrics", nargs="+", help="runs' metrics.json files (data/runs/<benchmark>/<optimizer>/seed<N>/metrics.json)")
    t.add_argument("--data", help="the dataset file they trained on (default: the one data/raw/*.pt of their working directory)")
    _markdown_output(t, _retrain)

    d = sub.add_parser("dvc-deps", help="each DVC stage's code deps: its rules, their scripts and the modules they import")
    d.add_argument("--check", action="store_true", help="change nothing; exit 1 when dvc.yaml's deps differ")
    d.add_argument("--root", default=".", help="the repository (default: the working directory)")
    d.set_defaults(func=_dvc_deps)

    m = sub.add_parser("readme", help="rewrite README.md's results block from paper/verdicts.json and docs/performance.json")
    m.add_argument("--check", action="store_true", help="change nothing; exit 1 when the block is stale")
    m.add_argument("--root", default=".", help="the repository (default: the working directory)")
    m.set_defaults(func=_readme)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except Exception as err:
        if not is_known_error(err):
            raise
        print(f"optbias {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
