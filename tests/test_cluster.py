"""The pipeline on a real SLURM cluster: a throwaway single-node one (workflow/cluster/slurm.sh,
Debian's slurmctld, slurmd and munge, as root), driven through workflow/profiles/slurm and
snakemake-executor-plugin-slurm. Jobs must really go through sbatch, the outputs must equal a local
run's, a cancelled training job (preemption) must resume from its last finished task, and the
commands docs/cluster.md gives for it are the ones run here. make test installs the packages; where they or the
daemons are missing the tests fail with the reason, never skip."""

from __future__ import annotations

import contextlib
import copy
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE, TINY_CONFIG, scheduled, snakemake, write_config

pytestmark = pytest.mark.slow

SCRIPT = REPO / "workflow/cluster/slurm.sh"
CLUSTER_DOC = REPO / "docs/cluster.md"  # the README's page for SLURM
README_STATE = "/tmp/optbias-slurm"  # the state directory the documented commands use


def readme_commands() -> list[str]:
    """The shell lines of the documented block for the throwaway cluster (docs/cluster.md, section
    "Try it without a cluster")."""
    text = CLUSTER_DOC.read_text()
    section = text.split("## Try it without a cluster", 1)[1].split("\n## ", 1)[0]
    block = section.split("<!-- throwaway cluster: run by tests/test_cluster.py -->", 1)[1]
    block = block.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


@contextlib.contextmanager
def running_cluster():
    """The documented start command, with a temporary state directory; yields (state, daemon PIDs) and
    stops the cluster afterwards, by the documented stop command. A SIGTERM (CI or a person stopping
    the run) stops the cluster too before the process ends: pytest's own teardown never runs then."""
    start, *_, stop = readme_commands()
    state = Path(tempfile.mkdtemp(prefix="optbias-slurm-", dir="/tmp"))  # munged: every parent searchable
    proc = subprocess.run(start.replace(README_STATE, str(state)), shell=True, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:  # the script has stopped what it started
        pytest.fail(f"the SLURM cluster did not start ({start}):\n{proc.stdout}\n{proc.stderr}")
    pids = dict(line.split("=") for line in proc.stdout.split())
    stop_command = stop.replace(README_STATE, str(state))

    def on_sigterm(signum, frame):
        subprocess.run(stop_command, shell=True, cwd=REPO, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # then end as SIGTERM would have
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield state, pids
    finally:
        signal.signal(signal.SIGTERM, previous)
        subprocess.run(stop_command, shell=True, cwd=REPO, timeout=120)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values()), "a daemon survived the stop command"
    assert not Path("/etc/slurm/slurm.conf").exists()
    shutil.rmtree(state)


@pytest.fixture(scope="module")
def cluster():
    """A throwaway cluster for the module (``running_cluster``): its state directory."""
    with running_cluster() as (state, pids):
        assert set(pids) == {"munged", "slurmctld", "slurmd"}
        yield state


def test_a_run_stopped_by_sigterm_stops_its_cluster(tmp_path):
    """CI that stops a test run mid-cluster (SIGTERM) must not leave the daemons running, nor
    /etc/slurm/slurm.conf: the next run would refuse to start a cluster (it once did)."""
    script = tmp_path / "hold.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "from test_cluster import running_cluster\n"
        "with running_cluster() as (state, pids):\n"
        "    print(' '.join(pids.values()), flush=True)\n"
        "    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pids = holder.stdout.readline().split()
        assert len(pids) == 3 and all(Path(f"/proc/{pid}").exists() for pid in pids), pids
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=120) == -signal.SIGTERM  # it ended as SIGTERM ends a process
    finally:
        if holder.poll() is None:
            holder.kill()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "a daemon survived the SIGTERM"
    assert not Path("/etc/slurm/slurm.conf").exists() and not Path("/etc/slurm/slurm.conf").is_symlink()


@pytest.mark.parametrize("relative", [False, True], ids=["absolute link", "relative link"])
def test_a_link_left_by_an_interrupted_cluster_is_cleared_before_a_new_one_starts(tmp_path, relative):
    """A run killed before `stop` leaves /etc/slurm/slurm.conf linking to its state directory (CI
    once failed on such a link). `start` clears it when that cluster's slurmctld is gone, and kills
    only processes its PID files name by the daemon's name: a reused PID survives."""

    link = Path("/etc/slurm/slurm.conf")
    assert not link.exists() and not link.is_symlink(), f"{link} exists: stop the cluster it belongs to first"
    stale = tmp_path / "stale"
    (stale / "run").mkdir(parents=True)
    (stale / "munge").mkdir()
    (stale / "slurm.conf").write_text("ClusterName=interrupted\n")
    bystander = subprocess.Popen(["sleep", "300"])  # a live PID that is not a SLURM daemon
    for daemon in ("slurmctld", "slurmd", "munged"):
        (stale / "run" / f"{daemon}.pid").write_text(f"{bystander.pid}\n")
    link.parent.mkdir(exist_ok=True)
    target = Path(os.path.relpath(stale / "slurm.conf", link.parent)) if relative else stale / "slurm.conf"
    link.symlink_to(target)  # a relative target is resolved from /etc/slurm, not from start's directory
    fresh = Path(tempfile.mkdtemp(prefix="optbias-slurm-", dir="/tmp"))
    try:
        proc = subprocess.run(["bash", str(SCRIPT), "start", str(fresh)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"links to {target}, whose slurmctld is not running" in proc.stderr, proc.stderr
        assert Path(os.readlink(link)) == fresh / "slurm.conf"
        assert bystander.poll() is None, "a process that only reused a daemon's PID was killed"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(fresh)], timeout=120)
        bystander.send_signal(signal.SIGTERM)
        bystander.wait()
        if link.is_symlink() and Path(os.readlink(link)) in (target, fresh / "slurm.conf"):
            link.unlink()
        shutil.rmtree(fresh)
    assert not link.is_symlink()


def test_start_refuses_a_link_that_is_not_one_of_its_clusters(tmp_path):
    """A symlinked /etc/slurm/slurm.conf whose directory lacks this script's run/ and munge/ (an
    administrator's config, say) is never removed, even with no slurmctld running."""
    link = Path("/etc/slurm/slurm.conf")
    assert not link.exists() and not link.is_symlink(), f"{link} exists: stop the cluster it belongs to first"
    foreign = tmp_path / "admin"
    foreign.mkdir()
    (foreign / "slurm.conf").write_text("ClusterName=site\n")
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(foreign / "slurm.conf")
    try:
        proc = subprocess.run(["bash", str(SCRIPT), "start", str(tmp_path / "ours")], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "exists and is not this cluster's: stop that cluster first" in proc.stderr, proc.stderr
        assert "stopping what is left" not in proc.stderr, proc.stderr
        assert Path(os.readlink(link)) == foreign / "slurm.conf"
        assert not (tmp_path / "ours" / "run").exists(), "start went on after refusing"
    finally:
        if link.is_symlink() and Path(os.readlink(link)) == foreign / "slurm.conf":
            link.unlink()
    assert not link.is_symlink()


def test_start_refuses_the_config_of_a_cluster_that_is_running(cluster, tmp_path):
    link = Path("/etc/slurm/slurm.conf")
    proc = subprocess.run(["bash", str(SCRIPT), "start", str(tmp_path / "second")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "exists and is not this cluster's: stop that cluster first" in proc.stderr
    assert Path(os.readlink(link)) == cluster / "slurm.conf"
    sinfo = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                           env={**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")}, timeout=30)
    assert sinfo.stdout.split() == ["idle"], sinfo.stdout + sinfo.stderr


def slurm_command() -> list[str]:
    """The documented snakemake line for the throwaway cluster, as arguments."""
    line = next(c for c in readme_commands() if c.startswith("snakemake "))
    return line.split()[1:]


def run_on_cluster(workdir: Path, state: Path, *targets: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf"), "PYTHONUNBUFFERED": "1"}
    # targets first: --default-resources takes every word after it
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *targets, *slurm_command()]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=REPO)


def small_config(**changes) -> dict:
    config = {k: copy.deepcopy(v) for k, v in TINY_CONFIG.items() if k not in ("sweep", "budget", "ablation")}
    config.update(seeds=[0, 1], benchmarks={"permuted": TINY_CONFIG["benchmarks"]["permuted"]},
                  optimizers={"sgd": {"type": "sgd", "lr": 0.05}, "shampoo": {"type": "shampoo", "lr": 0.05}})
    config.update(changes)
    return config


def without_timing(path: Path) -> dict:
    run = json.loads(path.read_text())
    run.pop("timing")
    return run


TARGETS = ["data/summary/permuted.json"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """small_config() run locally: one job per (benchmark, optimizer), the seeds one after another."""
    local = tmp_path_factory.mktemp("local")
    write_config(local, small_config())
    snakemake(local, "--cores", "2", *TARGETS, check=True)
    return local


# The documented command: one job per seed (the profile's seed_jobs=separate), so fetch, 2 x 2 training
# jobs and summarize; and with Snakemake's grouping (commented in the profile), the four training
# jobs bundled two to a SLURM job.
@pytest.mark.parametrize("extra, n_jobs", [((), 6), (("--groups", "train=seeds", "--group-components", "seeds=2"), 4)],
                         ids=["one-job-per-seed", "grouped"])
def test_the_pipeline_runs_through_sbatch_and_equals_a_local_run(cluster, local_run, tmp_path, extra, n_jobs):
    remote = tmp_path / "slurm"
    write_config(remote, small_config())
    start = time.monotonic()
    proc = run_on_cluster(remote, cluster, *TARGETS, *extra)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(job_ids) == len(set(job_ids)) == n_jobs, log[-4000:]
    assert sorted(re.findall(r"train permuted/(\w+): seed (\d)", log)) == [
        ("sgd", "0"), ("sgd", "1"), ("shampoo", "0"), ("shampoo", "1")], log[-4000:]
    print(f"cluster run: {time.monotonic() - start:.0f} s, SLURM job ids {job_ids}")
    squeue = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i %j %T"], capture_output=True,
                            text=True, env={**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")})
    finished = {line.split()[0]: line.split()[2] for line in squeue.stdout.splitlines()}
    assert all(finished.get(j) == "COMPLETED" for j in job_ids), squeue.stdout
    assert (remote / TARGETS[0]).read_bytes() == (local_run / TARGETS[0]).read_bytes()
    for run in sorted(local_run.glob("data/runs/*/*/seed*/metrics.json")):
        assert without_timing(remote / run.relative_to(local_run)) == without_timing(run), run
    # A local dry run (one job per seed list) on the cluster's outputs: switching granularity reruns nothing.
    assert scheduled(snakemake(remote, "-n", *TARGETS, check=True).stdout) == {}


def test_a_cancelled_training_job_resumes_from_its_last_task(cluster, tmp_path):
    """Preemption: scancel the training job once its first task is saved; the rerun on the cluster
    restores the saved tasks and ends with a local uninterrupted run's results."""
    config = small_config(seeds=[0], model={"hidden": [128]}, optimizers={"shampoo": {"type": "shampoo", "lr": 0.05}},
                          benchmarks={"permuted": {"n_tasks": 3, "epochs_per_task": 3, "batch_size": 64,
                                                   "permutation_seed": 0}})
    target = "data/runs/permuted/shampoo/seed0/metrics.json"
    local, remote = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local, remote):
        write_config(workdir, config)
    snakemake(local, "--cores", "1", target, check=True)
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")}
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(remote), target, *slurm_command()]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    state = remote / "data/runs/permuted/shampoo/seed0.resume.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert state.exists(), "no task finished before the deadline"
    subprocess.run(["scancel", "--user", getpass.getuser()], env=env, check=True)
    log = job.communicate(timeout=300)[0]
    assert job.returncode != 0 and "CANCELLED" in log, log[-3000:]
    assert not (remote / target).exists() and state.exists()
    proc = run_on_cluster(remote, cluster, target)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    train_log = (remote / "logs/train/permuted/shampoo/seed0.log").read_text()  # one job per seed
    resumed = re.search(r"resumed from \S+ after (\d) of 3 tasks", train_log)
    assert resumed and 1 <= int(resumed.group(1)) < 3, train_log[-2000:]
    assert without_timing(remote / target) == without_timing(local / target)
    assert not state.exists()


@pytest.mark.parametrize("name", ["paper", "fashion"])
def test_the_larger_configs_dry_run_on_the_cluster_profile(cluster, tmp_path, name):
    """`snakemake --profile workflow/profiles/slurm --configfile config/<name>.yaml -n` (docs/cluster.md's
    command for full MNIST, and the same for full Fashion-MNIST): the profile and the config's DAG
    parse and schedule one training job per (benchmark, optimizer, seed), without data or jobs."""
    (tmp_path / "config").mkdir()
    for file in ("config.yaml", f"{name}.yaml"):
        (tmp_path / "config" / file).write_text((REPO / "config" / file).read_text())
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")}
    proc = subprocess.run([*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--profile",
                           str(REPO / "workflow/profiles/slurm"), "--configfile", str(tmp_path / f"config/{name}.yaml"),
                           "-n"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from optbias.perf.bench import merged_config  # Snakemake's own nested merge, as --configfile does

    config = merged_config(REPO / f"config/{name}.yaml", REPO / "config/config.yaml")
    assert scheduled(proc.stdout + proc.stderr)["train"] == (
        len(config["benchmarks"]) * len(config["optimizers"]) * len(config["seeds"]))
    assert not (tmp_path / "data").exists()
