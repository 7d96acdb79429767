"""DVC: the headline/curve files on hand-computed runs, dvc.yaml against the Snakemake DAG, and the
round trip run -> dvc push -> fresh clone -> optbias pull -> nothing retrains, figures regenerate."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FIGURE_RULES, REPO, TINY_CONFIG, TINY_PP, scheduled, snakemake, write_config
from optbias.versioning import tracking

# What a clone of the repository holds that the pipeline and DVC need (no data, no checkpoints).
CODE = ["Snakefile", "workflow", "src/optbias", "dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".dvcignore",
        ".gitignore"]


# ---------------------------------------------------------------- headline metrics and curves

def _run(benchmark, optimizer, seed, R):
    return {"benchmark": benchmark, "optimizer": optimizer, "seed": seed, "R": R}


def test_curves_average_first_task_and_seen_tasks_over_seeds():
    runs = [_run("permuted", "sgd", 0, [[0.9, 0.1, 0.0], [0.5, 0.8, 0.2], [0.3, 0.6, 0.9]]),
            _run("permuted", "sgd", 1, [[0.7, 0.3, 0.0], [0.3, 0.6, 0.0], [0.1, 0.2, 0.7]])]
    rows = tracking.curves(runs)[("permuted", "sgd")]
    assert [r["tasks_trained"] for r in rows] == [1, 2, 3]
    # R[i][0] averaged over the seeds: (0.9+0.7)/2, (0.5+0.3)/2, (0.3+0.1)/2
    assert [r["first_task_accuracy"] for r in rows] == pytest.approx([0.8, 0.4, 0.2])
    # mean_{j<=i} R[i][j], then over seeds: seed 0: 0.9, 0.65, 0.6; seed 1: 0.7, 0.45, 1/3
    assert [r["seen_tasks_accuracy"] for r in rows] == pytest.approx([0.8, 0.55, (0.6 + 1 / 3) / 2])
    csv = tracking.to_csv(rows).splitlines()
    assert csv[0] == "tasks_trained,first_task_accuracy,seen_tasks_accuracy" and csv[1].startswith("1,0.8")


def test_curves_refuse_runs_with_different_task_counts():
    runs = [_run("permuted", "sgd", 0, [[1.0]]), _run("permuted", "sgd", 1, [[1.0, 0.0], [0.5, 1.0]])]
    with pytest.raises(ValueError, match="different numbers of tasks"):
        tracking.curves(runs)


def test_headline_keeps_means_of_accuracy_and_forgetting_in_config_order():
    def entry(acc, fgt):
        return {"average_accuracy": {"mean": acc, "ci95": [0, 1]}, "average_forgetting": {"mean": fgt, "ci95": [0, 1]},
                "bwt": {"mean": -fgt, "ci95": [-1, 0]}}

    summary = {"benchmark": "permuted", "order": ["shampoo", "sgd"],
               "optimizers": {"sgd": entry(0.5, 0.4), "shampoo": entry(0.7, 0.1)}}
    out = tracking.headline([summary])
    assert out == {"permuted": {"shampoo": {"average_accuracy": 0.7, "average_forgetting": 0.1},
                                "sgd": {"average_accuracy": 0.5, "average_forgetting": 0.4}}}
    assert list(out["permuted"]) == ["shampoo", "sgd"]
    with pytest.raises(ValueError, match="two summaries"):
        tracking.headline([summary, summary])


# ---------------------------------------------------------------- dvc.yaml matches the DAG

def _dvc_outputs() -> dict[str, str]:
    """Every output path of dvc.yaml -> its stage."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outs = {}
    for name, stage in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for item in stage.get(kind, []):
                outs[next(iter(item)) if isinstance(item, dict) else item] = name
    return outs


def _owners(path: str, outs: dict[str, str]) -> list[str]:
    return [o for o in outs if path == o or path.startswith(o.rstrip("/") + "/")]


def test_every_output_of_the_dag_lies_under_exactly_one_dvc_output(tmp_path):
    """On the default config, whose dvc.lock is the one committed."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    proc = snakemake(tmp_path, "--summary", check=True)
    files = [line.split("\t")[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
    assert len(files) > 20, proc.stdout
    outs = _dvc_outputs()
    for a in outs:
        assert not [b for b in outs if b != a and b.startswith(a.rstrip("/") + "/")], f"dvc.yaml outputs overlap: {a}"
    rebuilt = ("paper/", "data/audit.json")  # the audit and the paper: rebuilt in seconds, not versioned
    for path in files:
        if path.startswith(rebuilt):
            continue
        owners = _owners(path, outs)
        assert len(owners) == 1, (f"{path} (a Snakemake output) lies under {owners or 'no'} DVC output; add its "
                                  "directory to a stage's outs in dvc.yaml and its target to workflow/rules/versioning.smk")
    # Every DVC output directory is really produced, so `dvc repro`/`dvc commit` never miss one.
    for out in outs:
        assert any(path == out or path.startswith(out + "/") for path in files), f"{out}: no Snakemake rule writes it"


def test_root_gitignore_ignores_cached_outputs_and_keeps_small_metrics_in_git():
    ignored = set((REPO / ".gitignore").read_text().split())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for item in stage.get(kind, []):
                path, props = (next(iter(item.items())) if isinstance(item, dict) else (item, {}))
                cached = (props or {}).get("cache", True)
                listed = f"/{path}/" in ignored or f"/{path}" in ignored  # a directory or a file
                assert listed == cached, (
                    f"{path}: cached DVC outputs must be in .gitignore, uncached ones (committed to git) must not")


# ---------------------------------------------------------------- the round trip

def _sh(cmd: list[str], cwd: Path, env: dict, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} in {cwd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _round_trip_config() -> dict:
    """TINY_CONFIG shrunk further: one benchmark of two tasks, one seed, two optimizers, a one-point sweep."""
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["seeds"] = [0]
    cfg["benchmarks"] = {"permuted": {"n_tasks": 2, "epochs_per_task": 1, "batch_size": 128, "permutation_seed": 0}}
    cfg["optimizers"] = {name: cfg["optimizers"][name] for name in ("sgd", "shampoo")}
    cfg["sweep"] = {"seeds": [1000, 1001], "validation_fraction": 0.1, "lrs": {"sgd": [0.05]}}
    # A one-budget grid: the rule's validation runs exist (data/budget), the experiment reuses the headline runs.
    cfg["budget"] = {"validation_seeds": [1000, 1001], "seeds": [0],
                     "benchmarks": {"permuted": {"grid": [1], "plateau_tolerance": 0.01}}}
    cfg.pop("ablation")
    # A two-value knob of the retention rule, so that its DVC output (data/knobs) exists too.
    cfg["optimizers"]["sgd"] = {**cfg["optimizers"]["sgd"], "momentum": 0.0}
    cfg["knobs"] = {"sgd": {"option": "momentum", "grid": [0.0, 0.5]}}
    # The smallest Powerprop block, so that its DVC output (data/powerprop) exists too.
    pp = copy.deepcopy(TINY_PP)
    pp["seeds"] = [0]
    pp["methods"] = {"ppsgd-a2": pp["methods"]["ppsgd-a2"]}
    cfg["powerprop"] = pp
    return cfg


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _lock_out(lock: dict, stage: str, path: str) -> dict:
    return next(o for o in lock["stages"][stage]["outs"] if o["path"] == path)


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> tuple[Path, dict]:
    """A repository with the code and the round-trip config, run through DVC (`dvc repro`: each stage
    calls snakemake) and committed with its dvc.lock and small metrics: (its path, the environment)."""
    tmp = tmp_path_factory.mktemp("dvc-round-trip")
    py = sys.executable
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DVC_NO_ANALYTICS": "1",
           "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site-cache"),
           "PATH": os.path.dirname(py) + os.pathsep + os.environ.get("PATH", ""),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    origin = tmp / "origin"
    for rel in CODE:
        src, dst = REPO / rel, origin / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    write_config(origin, _round_trip_config())
    _sh(["git", "init", "-q"], origin, env)
    _sh(["git", "add", "-A"], origin, env)
    _sh(["git", "commit", "-qm", "code"], origin, env)
    _sh([py, "-m", "dvc", "repro"], origin, env, timeout=600)
    untracked = _sh(["git", "status", "--porcelain", "--untracked-files=all"], origin, env).stdout.split("\n")
    new = sorted(line[3:] for line in untracked if line)
    assert new == ["data/metrics/curves/permuted/sgd.csv", "data/metrics/curves/permuted/shampoo.csv",
                   "data/metrics/headline.json", "dvc.lock"], "only dvc.lock and the small metrics reach git"
    _sh(["git", "add", "-A"], origin, env)
    _sh(["git", "commit", "-qm", "results"], origin, env)
    assert not [f for f in _sh(["git", "ls-files"], origin, env).stdout.split() if f.endswith(".pt")]
    return origin, env


def _fresh_clone(origin: Path, clone: Path, env: dict) -> Path:
    """A clone has code, config, dvc.lock and the small metrics: no data, no checkpoints."""
    _sh(["git", "clone", "-q", str(origin), str(clone)], clone.parent, env)
    assert not (clone / "data" / "runs").exists()
    return clone


def _nothing_retrains(origin: Path, clone: Path, env: dict) -> None:
    """After a pull: every checkpoint is the origin's, `snakemake -n` has nothing to do, deleted
    figures redraw byte-identical without training or probes, `dvc status` is clean, and the
    summaries and headline metrics equal the origin's."""
    py = sys.executable
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    runs = _lock_out(lock, "train", "data/runs")
    manifest = json.loads((clone / ".dvc/cache/files/md5" / runs["md5"][:2] / runs["md5"][2:]).read_text())
    checkpoints = [e for e in manifest if e["relpath"].endswith(".pt")]
    assert len(checkpoints) == 2 * 2  # optimizers x tasks (one seed)
    for entry in checkpoints:
        pulled = clone / "data/runs" / entry["relpath"]
        assert _md5(pulled) == entry["md5"] == _md5(origin / "data/runs" / entry["relpath"])

    def clone_snakemake(*args):
        return _sh([py, "-m", "snakemake", *args], clone, env)

    dry = clone_snakemake("-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr
    figures = {p.name: p.read_bytes() for p in (clone / "figures").iterdir()}
    shutil.rmtree(clone / "figures")
    rerun = clone_snakemake("--cores", "2")
    jobs = scheduled(rerun.stdout + rerun.stderr)
    assert {"first_task_accuracy", "accuracy_matrices", "lr_sweep", "all"} <= set(jobs)
    assert set(jobs) <= FIGURE_RULES | {"all"}, jobs  # no training, no probes
    assert {p.name: p.read_bytes() for p in (clone / "figures").iterdir()} == figures
    status = _sh([py, "-m", "dvc", "status"], clone, env)
    assert "up to date" in status.stdout, status.stdout
    for rel in ["data/metrics/headline.json", *(p.relative_to(origin).as_posix()
                                                for p in (origin / "data/summary").rglob("*.json"))]:
        assert (clone / rel).read_bytes() == (origin / rel).read_bytes(), rel


@pytest.mark.slow
def test_push_clone_pull_reuses_checkpoints_and_regenerates_figures(origin):
    """The committed default remote (a directory next to the repository) round trip."""
    origin, env = origin
    py = sys.executable
    _sh([py, "-m", "dvc", "push"], origin, env)
    remote = origin.parent / "optbias-dvc-remote"  # .dvc/config: url = ../../optbias-dvc-remote
    assert remote.is_dir() and any(remote.rglob("*.dir"))
    clone = _fresh_clone(origin, origin.parent / "clone", env)  # a sibling: the same ../optbias-dvc-remote
    _sh([py, "-m", "optbias", "pull"], clone, env)
    _nothing_retrains(origin, clone, env)

    shown = _sh([py, "-m", "dvc", "metrics", "show"], clone, env).stdout
    assert "permuted.sgd.average_accuracy" in shown and "permuted.shampoo.average_forgetting" in shown, shown
    headline = json.loads((clone / "data/metrics/headline.json").read_text())
    summary = json.loads((clone / "data/summary/permuted.json").read_text())
    assert headline["permuted"]["sgd"]["average_accuracy"] == summary["optimizers"]["sgd"]["average_accuracy"]["mean"]

    # A config that differs from dvc.lock: the pull refuses to mark the pulled runs up to date, and
    # Snakemake (with the provenance the touch recorded) schedules the changed training runs.
    cfg = yaml.safe_load((clone / "config/config.yaml").read_text())
    cfg["optimizers"]["sgd"]["lr"] = 0.5
    write_config(clone, cfg)
    refused = _sh([py, "-m", "optbias", "pull"], clone, env, check=False)
    assert refused.returncode == 1 and "not what dvc.lock records" in refused.stderr, refused.stdout + refused.stderr
    dry = _sh([py, "-m", "snakemake", "-n"], clone, env)
    jobs = scheduled(dry.stdout + dry.stderr)
    assert jobs["train"] == 1 and "sweep_train" not in jobs and "fetch" not in jobs, jobs  # sgd only


# ---------------------------------------------------------------- a real SSH remote

def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@pytest.fixture
def sshd(tmp_path):
    """A throwaway OpenSSH server on 127.0.0.1 (Debian's openssh-server, installed by make test's set-up):
    a generated host key and client key, a free high port, key login only. It is stopped at the end of
    the test, failed or not, and dies with the test process if that is killed. Yields (port, user,
    client key path)."""
    import getpass
    import socket
    import time

    assert Path("/usr/sbin/sshd").is_file(), "no /usr/sbin/sshd: run `bash tests/setup/debian-packages.sh` (openssh-server)"
    base = tmp_path / "sshd"
    base.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True)
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    with socket.socket() as probe:  # a port nobody listens on now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = base / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {base / 'host_key'}",
        f"AuthorizedKeysFile {base / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        f"PidFile {base / 'sshd.pid'}", "Subsystem sftp internal-sftp", ""]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege-separation directory
    with open(base / "sshd.log", "w") as log:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                                  preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (base / "sshd.log").read_text()
                time.sleep(0.1)
        yield port, getpass.getuser(), base / "client_key"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _add_ssh_remote(repo: Path, env: dict, sshd, store: Path, verify: bool = True) -> None:
    """Remote `lab` at ssh://user@127.0.0.1:port/<store> in repo/.dvc/config.local, as for a lab's host."""
    port, user, key = sshd
    py = sys.executable
    _sh([py, "-m", "dvc", "remote", "add", "--local", "-f", "lab", f"ssh://{user}@127.0.0.1:{port}{store}"], repo, env)
    _sh([py, "-m", "dvc", "remote", "modify", "--local", "lab", "keyfile", str(key)], repo, env)
    if verify:
        _sh([py, "-m", "dvc", "remote", "modify", "--local", "lab", "verify", "true"], repo, env)


@pytest.mark.slow
def test_an_ssh_remote_round_trip_and_a_corrupted_remote_fails_clearly(origin, sshd, tmp_path):
    """Push over SSH (DVC's SSH plugin, dvc-ssh) from the origin; a fresh clone pulls with `optbias pull
    --remote lab` and retrains nothing. Then one checkpoint is corrupted on the remote: a pull stops
    with a clear error and leaves no output half-written, and a remote without `verify` is refused
    (unverified, DVC checks the corrupted file out and `dvc status` stays clean)."""
    origin, env = origin
    py = sys.executable
    store = tmp_path / "lab-store"
    _add_ssh_remote(origin, env, sshd, store)
    _sh([py, "-m", "dvc", "push", "--remote", "lab"], origin, env)
    assert any(store.rglob("*.dir"))

    clone = _fresh_clone(origin, tmp_path / "clone", env)
    _add_ssh_remote(clone, env, sshd, store)
    _sh([py, "-m", "optbias", "pull", "--remote", "lab"], clone, env)
    _nothing_retrains(origin, clone, env)

    # One checkpoint's object on the remote, corrupted (same size, other bytes).
    lock = yaml.safe_load((origin / "dvc.lock").read_text())
    runs = _lock_out(lock, "train", "data/runs")
    manifest = json.loads((origin / ".dvc/cache/files/md5" / runs["md5"][:2] / runs["md5"][2:]).read_text())
    entry = next(e for e in manifest if e["relpath"].endswith(".pt"))
    obj = store / "files/md5" / entry["md5"][:2] / entry["md5"][2:]
    obj.write_bytes(bytes(b ^ 0xFF for b in obj.read_bytes()))

    broken = _fresh_clone(origin, tmp_path / "broken", env)
    _add_ssh_remote(broken, env, sshd, store)
    failed = _sh([py, "-m", "optbias", "pull", "--remote", "lab"], broken, env, check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "optbias pull: error: `dvc pull --remote lab` failed" in failed.stderr, failed.stderr
    assert "none that differs from dvc.lock was written" in failed.stderr
    assert not (broken / "data/runs").exists()  # the output holding the corrupted file: absent, not partial
    assert (broken / "data/raw").is_dir()  # the intact outputs came (DVC 3.67 checks out every output that verified)

    unverified = _fresh_clone(origin, tmp_path / "unverified", env)
    _add_ssh_remote(unverified, env, sshd, store, verify=False)
    refused = _sh([py, "-m", "optbias", "pull", "--remote", "lab"], unverified, env, check=False)
    assert refused.returncode == 1 and "does not set `verify = true`" in refused.stderr, refused.stderr
    assert "dvc remote modify lab verify true" in refused.stderr
    assert not (unverified / "data/raw").exists() and not (unverified / "data/runs").exists()  # nothing pulled
    # Why: a plain `dvc pull` from that remote checks the corrupted checkpoint out, and `dvc status` is clean.
    _sh([py, "-m", "dvc", "pull", "--remote", "lab"], unverified, env)
    assert _md5(unverified / "data/runs" / entry["relpath"]) != entry["md5"]
    assert "up to date" in _sh([py, "-m", "dvc", "status"], unverified, env).stdout
    typo = _sh([py, "-m", "optbias", "pull", "--remote", "lba"], unverified, env, check=False)
    assert typo.returncode == 1 and "no DVC remote named 'lba'" in typo.stderr, typo.stderr


def test_pull_outside_a_dvc_repository_says_where_to_run_it(tmp_path):
    from optbias.versioning.pull import PullError, pull

    with pytest.raises(PullError, match="no dvc.yaml .* run `optbias pull` from the repository root"):
        pull(tmp_path)


# ---------------------------------------------------------------- what each stage depends on

def test_each_dvc_stage_depends_on_exactly_what_its_rules_read():
    """dvc.yaml's code deps per stage equal what optbias.versioning.deps computes from the workflow:
    the fix, when they differ, is printed by `optbias dvc-deps`."""
    from optbias.versioning import deps

    assert deps.check(REPO) == []
    stages = deps.dvc_stages(REPO)
    train, data_deps = stages["train"]["deps"], stages["data"]["deps"]
    assert "src/optbias" not in train and "workflow" not in train  # no longer everything
    assert "src/optbias/optim/shampoo.py" in train  # named by the registry, imported when an optimizer is built
    assert "src/optbias/continual/loop.py" in train and "workflow/scripts/continual/train.py" in train
    assert "src/optbias/specs.py" in train  # common.smk builds every run's spec with it
    for figure_only in ("src/optbias/continual/figures.py", "src/optbias/probes/figures.py", "src/optbias/perf/flops.py",
                        "workflow/scripts/continual/final_accuracy.py", "workflow/rules/paper.smk"):
        assert figure_only not in train, figure_only  # a figure's code does not invalidate training
    assert "src/optbias/continual/loop.py" not in data_deps
    assert "data/knobs" in stages["figures"]["deps"]  # retention_plasticity reads the retention rule's runs


def test_every_library_module_that_loading_the_workflow_imports_is_a_dep_of_every_stage():
    """Independent of the static closure: import what Snakemake imports when it parses the workflow
    (every stage's command parses all of it) and list the optbias modules in sys.modules."""
    from optbias.versioning import deps

    code = ("import sys; from pathlib import Path; from optbias.versioning import deps; "
            "deps.workflow_rules(Path(sys.argv[1])); "
            "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
            "if n.split('.')[0] == 'optbias' and getattr(m, '__file__', None)))")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = {Path(f).resolve().relative_to(REPO.resolve() / "src").as_posix() for f in proc.stdout.split()}
    loader = {"optbias/versioning/deps.py", "optbias/versioning/__init__.py"}  # the loader itself and its package
    loaded = {"src/" + f for f in loaded if f not in loader}
    assert "src/optbias/specs.py" in loaded and "src/optbias/config.py" in loaded
    for stage, spec in deps.dvc_stages(REPO).items():
        missing = loaded - set(spec["deps"])
        assert not missing, f"dvc.yaml stage {stage} lacks {sorted(missing)}, which parsing the workflow imports"


def test_the_import_closure_follows_relative_imports_and_registry_names(tmp_path):
    from optbias.versioning import deps

    pkg = tmp_path / "src/optbias"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from . import b\nfrom .sub import c\n",
        "b.py": "ROW = 'optbias.sub.d:Thing'\nNOT = 'optbias is great'\n",
        "sub/__init__.py": "",
        "sub/c.py": "def f():\n    from ..e import g  # inside a function\n",
        "sub/d.py": "import json\n",
        "e.py": "g = 1\n",
        "unused.py": "import optbias.a\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    script = tmp_path / "workflow/scripts/s.py"
    script.parent.mkdir(parents=True)
    script.write_text("from optbias.a import something\nimport os\n")
    closure = {p.relative_to(pkg).as_posix() for p in deps.import_closure([script], tmp_path / "src")}
    assert closure == {"__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py", "sub/d.py", "e.py"}

    (pkg / "f.py").write_text("")  # imported by a rule file only
    (tmp_path / "workflow/rules").mkdir()
    (tmp_path / "workflow/rules/x.smk").write_text("rule train:\n    output: 'x'\n\nfrom optbias import f as _f\n")
    (tmp_path / "workflow/rules/y.smk").write_text("rule figure:\n    output: 'y'\n")
    rules = [("train", "workflow/rules/x.smk", "workflow/scripts/s.py", ["data/runs/{b}/metrics.json"]),
             ("figure", "workflow/rules/y.smk", None, ["figures/f.png"]),
             ("both", "workflow/rules/y.smk", None, ["data/runs/x", "data/summary/y"])]
    outs = {"train": ["data/runs"], "metrics": ["data/summary"], "figures": ["figures"]}
    with pytest.raises(ValueError, match="rule both: its outputs lie under the outputs of the DVC stages"):
        deps.stage_deps(rules, outs, list(outs), tmp_path, "figures")
    got = deps.stage_deps(rules[:2], outs, list(outs), tmp_path, "figures")
    assert got["train"] == sorted(deps.ALWAYS + ["workflow/rules/x.smk", "workflow/scripts/s.py"]
                                  + [f"src/optbias/{f}" for f in closure | {"f.py"}])
    assert got["figures"] == sorted(deps.ALWAYS + ["workflow/rules/y.smk"]) and got["metrics"] == sorted(deps.ALWAYS)
