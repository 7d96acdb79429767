"""Jobs and the command line: known errors end in one line, light jobs start without torch, and
parsing the Snakefile imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO
from optbias import cli, job


def test_known_errors_are_one_line_and_others_are_tracebacks():
    from optbias import data, engine
    from optbias.versioning import pull

    assert job.is_known_error(ValueError("bad config"))
    assert job.is_known_error(data.DataError("fails its checksum"))
    assert job.is_known_error(engine.DivergenceError("loss became nan"))
    assert job.is_known_error(pull.PullError("no dvc.yaml"))
    assert not job.is_known_error(KeyError("a bug"))
    assert not job.is_known_error(RuntimeError("a bug"))


def _run_job(tmp_path, body: str) -> subprocess.CompletedProcess:
    """Run ``body`` inside ``job(snakemake)`` in a fresh interpreter, as a rule's script would."""
    code = ("import sys; from types import SimpleNamespace; from optbias.job import job\n"
            f"snakemake = SimpleNamespace(log=[{str(tmp_path / 'job.log')!r}], rule='demo')\n"
            f"with job(snakemake):\n    {body}\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_job_writes_its_output_to_the_log_and_ends_a_known_error_in_one_line(tmp_path):
    ok = _run_job(tmp_path, "print('hello'); print('warning', file=sys.stderr)")
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    assert (tmp_path / "job.log").read_text() == "hello\nwarning\n"

    known = _run_job(tmp_path, "raise ValueError('optimizers.x: unknown optimizer type')")
    assert known.returncode == 1
    assert (tmp_path / "job.log").read_text() == "demo: error: optimizers.x: unknown optimizer type\n"

    bug = _run_job(tmp_path, "raise KeyError('a bug')")
    assert bug.returncode == 1 and "Traceback" in (tmp_path / "job.log").read_text()


def test_without_a_log_a_job_prints_to_the_console(capsys):
    with job.job(SimpleNamespace(log=[], rule="demo")):
        print("to the console")
    assert capsys.readouterr().out == "to the console\n"
    with pytest.raises(SystemExit) as stop:
        with job.job(SimpleNamespace(log=[], rule="demo")):
            raise ValueError("bad")
    assert stop.value.code == 1 and capsys.readouterr().err == "demo: error: bad\n"


def test_summary_jobs_do_not_load_torch(tmp_path):
    """Summaries, figures and the paper are many short jobs at the end of the DAG; torch costs ~2 s each."""
    run = {"benchmark": "permuted", "optimizer": "sgd", "seed": 0, "status": "ok", "tasks": ["t0", "t1"],
           "R": [[0.9, 0.1], [0.8, 0.9]],
           "average_accuracy": 0.85, "average_forgetting": 0.1, "bwt": -0.1, "mean_old_accuracy": 0.8}
    (tmp_path / "m.json").write_text(json.dumps(run))
    code = ("import sys; from optbias.continual.summary import summarize_runs; "
            "from optbias.fileio import atomic_write_json, load_jsons; "
            f"atomic_write_json({str(tmp_path / 's.json')!r}, summarize_runs(load_jsons([{str(tmp_path / 'm.json')!r}]), "
            "['sgd'])); import optbias.paper.claims, optbias.paper.render, optbias.probes.summary, "
            "optbias.powerprop.summary, optbias.versioning.tracking; "
            "assert 'torch' not in sys.modules, 'a summary module imported torch'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["optimizers"]["sgd"]["average_accuracy"]["mean"] == 0.85


def test_parsing_the_snakefile_does_not_import_torch():
    """`snakemake -n` checks the config (registry names, constructor signatures) without torch (~2-4 s)."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('TORCH' if 'torch' in sys.modules else 'NO TORCH'))\n"
            "from snakemake.cli import main\n"
            "sys.argv = ['snakemake', '-n', '--quiet']\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().endswith("NO TORCH"), proc.stdout + proc.stderr


def test_cli_has_the_user_commands_and_a_one_line_error(tmp_path, capsys):
    assert {"pull", "perf-shampoo"} <= set(cli.parser()._subparsers._group_actions[0].choices)
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.main(["pull"]) == 1  # no dvc.yaml here
    finally:
        os.chdir(cwd)
    assert "optbias pull: error: no dvc.yaml" in capsys.readouterr().err
