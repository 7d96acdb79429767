"""Where a pipeline run's time went, read from the files Snakemake leaves in its working directory.

* ``.snakemake/log/*.snakemake.log``: one log per Snakemake invocation, with a time stamp at every
  job start and end and "N of M steps (P%) done" after every finished job;
* ``benchmarks/<stage>/**.tsv``: the ``benchmark:`` file of every job that has one (column ``s``:
  the job's wall time in seconds).

A long run (``make fashion``) is often interrupted and resumed: each invocation has its own log and
does only the jobs that were left. ``invocations`` lists them all and ``runs_markdown`` sums them
(``optbias runs``); ``snakemake_wall_time`` picks the one complete run with the most jobs (figure 5
of ``optbias bench``). Nothing here imports torch.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

SNAKEMAKE_TIME = re.compile(r"^\s*\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", re.M)  # grouped jobs: indented
CORES = re.compile(r"^Provided cores: (\d+)", re.M)  # Snakemake's --cores, as the log states it
STEPS = re.compile(r"(\d+) of (\d+) steps \([\d.]+%\) done")  # "0.1%" and "99.5%" near the ends


def _stamp(text: str) -> float:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").timestamp()


def invocations(workdir: str | Path) -> list[dict[str, Any]]:
    """Every Snakemake invocation logged in ``workdir/.snakemake/log``, oldest first: ``log`` (path
    relative to ``workdir``), ``start`` and ``end`` (seconds since the epoch: its first and last time
    stamp), ``wall_s`` (end - start), ``done`` and ``total`` (its last "N of M steps"; 0 and None
    before its first finished job), ``complete`` (its last job finished: done == total) and
    ``cores`` (Snakemake's "Provided cores", None when the log does not say). A log
    without a time stamp (an invocation that stopped before its first job) is left out. An invocation
    that was killed ends at its last logged event, so its ``wall_s`` is a lower bound. Time stamps are
    local time, as Snakemake writes them; a step back (a daylight-saving change) is not a negative
    duration: each stamp is taken as at least the one before."""
    workdir = Path(workdir)
    out = []
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log")):
        text = log.read_text(errors="replace")
        stamps = SNAKEMAKE_TIME.findall(text)
        if not stamps:
            continue
        steps = STEPS.findall(text)
        done, total = (int(x) for x in steps[-1]) if steps else (0, None)
        times = [_stamp(s) for s in stamps]
        wall = sum(max(0.0, b - a) for a, b in zip(times, times[1:]))
        cores = CORES.search(text)
        out.append({"log": log.relative_to(workdir).as_posix(), "start": times[0], "end": times[0] + wall,
                    "wall_s": wall, "done": done, "total": total, "complete": total is not None and done == total,
                    "cores": int(cores.group(1)) if cores else None})
    return out


def snakemake_wall_time(workdir: str | Path) -> dict[str, Any] | None:
    """The complete Snakemake invocation with the most jobs in ``workdir/.snakemake/log`` (the later
    one on a tie): ``log``, ``jobs``, ``wall_s`` (first to last time stamp, seconds), ``start``,
    ``end``; or None when no invocation there finished its last job after a positive time. Of a run
    resumed over several invocations this is only one part: ``invocations`` has them all. Also its
    ``cores`` (``invocations``)."""
    best = None
    for run in invocations(workdir):
        if run["complete"] and run["end"] > run["start"] and (best is None or run["total"] >= best["jobs"]):
            best = {"log": run["log"], "jobs": run["total"], "wall_s": run["wall_s"], "start": run["start"],
                    "end": run["end"], "cores": run["cores"]}
    return best


def stage_times(workdir: str | Path, window: tuple[float, float] | None = None) -> dict[str, Any]:
    """Job seconds per stage from ``benchmarks/<stage>/**.tsv`` (Snakemake's ``benchmark:`` files,
    column ``s``), and the part of each spent in Shampoo jobs (any optimizer named shampoo*).

    ``window``: (start, end) in seconds since the epoch; only files last written inside it (one
    minute of slack) count, so that files left by an earlier run of another config do not.
    Jobs without a ``benchmark:`` file (figures, summaries) are not counted. A job that was
    interrupted and resumed has only its last attempt's time in its file.
    """
    workdir = Path(workdir)
    stages: dict[str, dict[str, float]] = {}
    for tsv in sorted((workdir / "benchmarks").rglob("*.tsv")):
        if window is not None and not window[0] - 60 <= tsv.stat().st_mtime <= window[1] + 60:
            continue
        rows = tsv.read_text().splitlines()
        if len(rows) < 2:
            continue
        seconds = float(rows[1].split("\t")[0])
        stage = tsv.relative_to(workdir / "benchmarks").parts[0]
        entry = stages.setdefault(stage, {"job_s": 0.0, "shampoo_s": 0.0, "jobs": 0})
        entry["job_s"] += seconds
        entry["jobs"] += 1
        entry["shampoo_s"] += seconds if "shampoo" in str(tsv.relative_to(workdir)) else 0.0
    total = sum(e["job_s"] for e in stages.values())
    return {"stages": dict(sorted(stages.items(), key=lambda kv: -kv[1]["job_s"])), "job_s": total,
            "shampoo_s": sum(e["shampoo_s"] for e in stages.values()),
            "jobs": sum(int(e["jobs"]) for e in stages.values())}


def stage_table(times: dict[str, Any], share: bool = False) -> list[str]:
    """Markdown lines of the job time per stage of ``stage_times``: jobs, job time (s), with ``share``
    each stage's fraction of the total, and the part in Shampoo jobs (s)."""
    lines = ["| stage | jobs | job time (s) |" + (" share |" if share else "") + " of which Shampoo (s) |",
             "|---|---|---|" + ("---|" if share else "") + "---|"]
    for stage, e in times["stages"].items():
        lines.append(f"| {stage} | {e['jobs']} | {e['job_s']:,.0f} |" + (f" {e['job_s'] / times['job_s']:.0%} |"
                     if share else "") + f" {e['shampoo_s']:,.0f} |")
    return lines


def runs_markdown(workdir: str | Path) -> str:
    """``optbias runs``: every invocation of ``invocations`` as a table, their summed wall time, and
    the job time per stage of ``stage_times`` over the whole working directory (every invocation)."""
    runs = invocations(workdir)
    fmt = "%Y-%m-%d %H:%M"
    lines = [f"# Snakemake runs in `{workdir}`", ""]
    if not runs:
        return "\n".join(lines + ["No Snakemake log with a job in `.snakemake/log`: nothing has run here yet.", ""])
    lines += ["| log | start | end | wall time (min) | steps done |", "|---|---|---|---|---|"]
    for r in runs:
        steps = f"{r['done']} of {r['total']}" if r["total"] is not None else "none"
        lines.append(f"| `{r['log']}` | {datetime.fromtimestamp(r['start']).strftime(fmt)} | "
                     f"{datetime.fromtimestamp(r['end']).strftime(fmt)} | {r['wall_s'] / 60:.1f} | "
                     f"{steps}{' (complete)' if r['complete'] else ''} |")
    total = sum(r["wall_s"] for r in runs)
    lines += ["", f"{len(runs)} invocation{'s' if len(runs) > 1 else ''}, {total / 3600:.2f} h of wall time in all (an invocation that was killed "
              "counts to its last logged event: a lower bound).", ""]
    times = stage_times(workdir)
    if times["jobs"]:
        lines += [f"Job time from every `benchmarks/` file here ({times['jobs']} jobs; a resumed job counts its last "
                  f"attempt only): {times['job_s']:,.0f} s, of which Shampoo jobs {times['shampoo_s']:,.0f} s.", "",
                  *stage_table(times), ""]
    return "\n".join(lines)
