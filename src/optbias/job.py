"""What every Snakemake job script does around its one library call.

Each rule's script (``workflow/scripts/<stage>/<rule>.py``) imports one library function and
calls it inside ``with job(snakemake):``, which

* sends everything the job prints (its stdout and stderr, file descriptors included, so torch's
  and tqdm's output too) to the rule's ``log:`` file: the console shows Snakemake's progress, one
  line per job, and the details stay in ``logs/``;
* ends a known error (a bad config, a dataset that fails its checksum, a divergence) with a
  one-line message in that log and exit status 1; any other exception keeps its traceback.

Snakemake prints a failed job's log (``show-failed-logs`` in the profile), so the one line is
what the user sees.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Errors that end a job or command with a one-line message instead of a traceback: (module, class).
# A module that was never imported cannot have raised its error, so it is not imported to check.
# ValueError covers ConfigError, OptimizerConfigError, ClaimError and PaperError.
KNOWN_ERRORS = (("builtins", "ValueError"), ("optbias.data", "DataError"), ("optbias.engine", "DivergenceError"),
                ("optbias.versioning.pull", "PullError"), ("optbias.versioning.compare", "CompareError"))


def is_known_error(err: BaseException) -> bool:
    """Whether ``err`` is one of ``KNOWN_ERRORS``: a user's mistake whose message says the fix."""
    return any(module in sys.modules and isinstance(err, getattr(sys.modules[module], name))
               for module, name in KNOWN_ERRORS)


@contextmanager
def job(snakemake: Any) -> Iterator[None]:
    """Run the body as the Snakemake job ``snakemake`` (the object a ``script:`` receives).

    Output goes to ``snakemake.log[0]`` when the rule has a log. A known error exits with status 1
    after one line ``<rule>: error: <message>``; other exceptions propagate with their traceback.
    """
    if snakemake.log:
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    try:
        yield
    except Exception as err:
        if not is_known_error(err):
            raise
        print(f"{snakemake.rule}: error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
