"""make test's own set-up: tests/setup/debian-packages.sh installs the Debian packages the tests
need, or, where it cannot (not root, no password-free sudo), stops at once naming the command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "tests/setup/debian-packages.sh"


def test_make_test_runs_the_setup_before_pytest():
    recipe = (REPO / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    assert lines[0] == "bash tests/setup/debian-packages.sh"
    assert lines[1].startswith("OPTBIAS_REQUIRE_FASHION=1 ") and "pytest" in lines[1]
    ci = (REPO / ".ci/run").read_text()
    assert [line for line in ci.splitlines() if line and not line.startswith("#")][-1] == "make test"


def test_without_root_or_sudo_it_stops_and_prints_the_command(tmp_path):
    """A PATH with no chromium, no SLURM, no sudo and an `id` that says uid 1000: exit 1 at once,
    nothing installed, and the exact apt-get command on stderr."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    proc = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert "make test needs these Debian packages: chromium" in proc.stderr
    assert ("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium" in proc.stderr
            and "--no-install-recommends" in proc.stderr and "slurmctld slurmd slurm-client munge" in proc.stderr)
    assert proc.stderr.rstrip().splitlines()[-1].startswith("  sudo sh -c 'apt-get update -qq && ")
    check = subprocess.run([str(bin_dir / "bash"), str(SCRIPT), "--check"], env={"PATH": str(bin_dir)},
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 1 and check.stderr.startswith("missing Debian packages: chromium")


def test_with_everything_installed_it_does_nothing():
    """Here (make test ran it first), every package is present: --check (which never installs)
    exits 0 with no output."""
    proc = subprocess.run(["bash", str(SCRIPT), "--check"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
