"""The command line: known errors end in one line, light commands start without torch."""

from __future__ import annotations

import json
import subprocess
import sys

from optbias import cli


def test_known_errors_are_one_line_and_others_are_tracebacks():
    from optbias import data, pull, train

    assert cli.is_known_error(ValueError("bad config"))
    assert cli.is_known_error(data.DataError("fails its checksum"))
    assert cli.is_known_error(train.DivergenceError("loss became nan"))
    assert cli.is_known_error(pull.PullError("no dvc.yaml"))
    assert not cli.is_known_error(KeyError("a bug"))
    assert not cli.is_known_error(RuntimeError("a bug"))


def test_summary_jobs_do_not_load_torch(tmp_path):
    """Summaries, figures and the paper are many short jobs at the end of the DAG; torch costs ~2 s each."""
    run = {"benchmark": "permuted", "optimizer": "sgd", "seed": 0, "status": "ok", "tasks": ["t0", "t1"],
           "R": [[0.9, 0.1], [0.8, 0.9]],
           "average_accuracy": 0.85, "average_forgetting": 0.1, "bwt": -0.1, "mean_old_accuracy": 0.8}
    (tmp_path / "m.json").write_text(json.dumps(run))
    code = ("import sys; from optbias import cli; "
            f"rc = cli.main(['summarize', '--metrics', {str(tmp_path / 'm.json')!r}, '--order', 'sgd', "
            f"'--output', {str(tmp_path / 's.json')!r}]); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'summarize imported torch'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["optimizers"]["sgd"]["average_accuracy"]["mean"] == 0.85
