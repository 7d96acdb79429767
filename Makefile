# The two quickstart commands. Each creates .venv (Python >= 3.11) and installs the project first.
#   make reproduce   # the whole pipeline on the embedded default (config/config.yaml)
#   make test        # the test suite, including an end-to-end snakemake run of a tiny config
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: reproduce test paper fashion extended lint clean-outputs pull dvc-repro compare bench

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"optbias needs Python >= 3.11, {sys.executable} is {sys.version.split()[0]}; set PYTHON=python3.11"'
	$(PYTHON) -m venv $(VENV)

# The exact versions of requirements.lock (pip-compile; its header says why and how to regenerate it),
# then the project itself, editable and without dependencies; pip check stops if the lock misses a dependency.
# Reinstall when the lock or pyproject.toml changes.
# The lock's torch wheel brings its CUDA libraries: a first install takes about 7.1 GiB, so it stops first,
# with the fix, when the disk holding $(VENV) has less than VENV_FREE_GB GiB free (an update of an
# environment that already has torch is not checked; VENV_FREE_GB=0 skips the check).
VENV_FREE_GB ?= 8
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	@ls -d $(VENV)/lib/python3*/site-packages/torch >/dev/null 2>&1 || { \
		free=$$(df -Pk $(VENV) | awk 'NR==2 {print int($$4 / 1048576)}'); if [ "$$free" -lt $(VENV_FREE_GB) ]; then \
		echo "make: error: $$free GiB free on the disk of $(VENV), and its packages (torch with CUDA) need about $(VENV_FREE_GB) GiB:" \
			"free space there (old clones, pip's cache), put the environment on a larger disk with VENV=/path/to/venv," \
			"or skip this check with VENV_FREE_GB=0" >&2; \
		exit 1; fi; }
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -r requirements.lock
	$(BIN)/python -m pip install -qq --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

reproduce: $(VENV)/.installed
	$(BIN)/snakemake --profile workflow/profiles/local --cores $(CORES)

paper: $(VENV)/.installed
	$(BIN)/snakemake --profile workflow/profiles/local --cores $(CORES) --configfile config/paper.yaml

# Full-size Fashion-MNIST, offline (apt-get install dataset-fashion-mnist). Same output paths as the
# default: run it in its own clone to keep both (docs/configs.md). Without the package,
# the fetch job stops with the apt-get command to run.
fashion: $(VENV)/.installed
	$(BIN)/snakemake --profile workflow/profiles/local --cores $(CORES) --configfile config/fashion.yaml

# Beyond the paper: Muon, SOAP and PSGD-Kron join the comparison (config/extended.yaml,
# docs/configs.md). Same output paths as the default: run it in its own clone.
extended: $(VENV)/.installed
	$(BIN)/snakemake --profile workflow/profiles/local --cores $(CORES) --configfile config/extended.yaml

# First the Debian packages the tests need (tests/setup/debian-packages.sh: apt-get as root, else
# sudo, else it stops and prints the command), so that no test skips: Fashion-MNIST is required.
test: $(VENV)/.installed
	bash tests/setup/debian-packages.sh
	OPTBIAS_REQUIRE_FASHION=1 $(BIN)/python -m pytest

# DVC (docs/dvc.md): fetch data and checkpoints without retraining (REMOTE=<name>: another remote than the default),
# or run the pipeline as DVC stages (each a snakemake call) and record the hashes in dvc.lock.
REMOTE ?=
pull: $(VENV)/.installed
	$(BIN)/optbias pull $(if $(REMOTE),--remote $(REMOTE))

# After `make reproduce`: your headline metrics and claim verdicts against the committed ones
# (docs/reproducibility.md); exit status 1 when a verdict differs. REV=<commit> for another reference.
REV ?= HEAD
compare: $(VENV)/.installed
	$(BIN)/optbias compare --rev $(REV)

# The performance figures (ratios from one run, 1 thread) -> docs/performance.md (+ .json). Run it on a
# quiet machine after `make reproduce` (figure 5 reads its .snakemake/log and benchmarks/). Figure 3's
# peer, Avalanche, is a dependency (requirements.lock).
bench: $(VENV)/.installed
	$(BIN)/optbias bench

dvc-repro: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

lint: $(VENV)/.installed
	$(BIN)/snakemake --lint

# Every gitignored pipeline output (.gitignore); the committed ones (data/metrics, paper/verdicts.json) stay.
clean-outputs:
	rm -rf data/raw data/runs data/summary data/sweep data/budget data/knobs data/powerprop data/probes data/audit.json \
		figures logs benchmarks paper/build paper/audit.md dvc_plots .snakemake
