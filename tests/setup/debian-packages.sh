#!/usr/bin/env bash
# The Debian packages the test suite needs, installed when missing; `make test` runs this first.
#   chromium               headless rendering of the report and the explore notebook (tests/test_paper*.py)
#   dataset-fashion-mnist  full Fashion-MNIST at its default location (tests/test_data.py)
#   slurmctld slurmd slurm-client munge
#                          a throwaway single-node SLURM cluster (tests/test_cluster.py, workflow/cluster/slurm.sh)
#   openssh-server         a throwaway sshd on localhost as a DVC remote (tests/test_dvc.py)
# As root it runs apt-get; otherwise sudo, when sudo works without a password prompt; otherwise it
# stops at once and prints the command to run. Exit status 0 when everything is there.
# With --check it installs nothing: exit 1 and the missing packages on stderr, if any.
set -euo pipefail

recommends=()   # chromium with its recommended fonts, as a desktop install has them
plain=()        # the rest without recommends (the SLURM daemons would pull in mail servers)
command -v chromium >/dev/null 2>&1 || recommends+=(chromium)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || plain+=(dataset-fashion-mnist)
[ -x /usr/sbin/sshd ] || plain+=(openssh-server)
for tool in slurmctld slurmd sinfo munged; do
  command -v "$tool" >/dev/null 2>&1 || { plain+=(slurmctld slurmd slurm-client munge); break; }
done
[ ${#recommends[@]} -eq 0 ] && [ ${#plain[@]} -eq 0 ] && exit 0
if [ "${1:-}" = "--check" ]; then
  echo "missing Debian packages: ${recommends[*]} ${plain[*]}" >&2
  exit 1
fi

steps="apt-get update -qq"
[ ${#recommends[@]} -eq 0 ] || steps+=" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${recommends[*]}"
[ ${#plain[@]} -eq 0 ] || steps+=" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${plain[*]}"
echo "tests/setup/debian-packages.sh: installing ${recommends[*]} ${plain[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sh -c "$steps"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo sh -c "$steps"
else
  echo "make test needs these Debian packages: ${recommends[*]} ${plain[*]}" >&2
  echo "Install them as root, then run make test again:" >&2
  echo "  sudo sh -c '$steps'" >&2
  exit 1
fi
