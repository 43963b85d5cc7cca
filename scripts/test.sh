#!/usr/bin/env bash
# The test command: installs what the tests need (into .venv: scripts/install.sh), starts the local
# test bed (dockerd with a single-node swarm, sshd on 127.0.0.1), runs every test with the venv's
# python, and stops what it started.
# Usage: bash scripts/test.sh [pytest args]   (e.g. -m "not slow and not docker" for the quick subset)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
# The tests and the snakemake runs they start use the venv's python (and its snakemake, pytest).
. .venv/bin/activate
started=0
cleanup() { if [ "$started" = 1 ] && [ -x testbed/down.sh ]; then bash testbed/down.sh || true; fi; }
trap cleanup EXIT
if [ -x testbed/up.sh ]; then
  started=1
  bash testbed/up.sh
  # The test bed's addresses and key for the SSH/Swarm tests.
  [ -f "${BENCHPIPE_TESTBED_ENV:-/tmp/benchpipe-testbed/env}" ] && set -a && . "${BENCHPIPE_TESTBED_ENV:-/tmp/benchpipe-testbed/env}" && set +a
fi
set +e
python -m pytest -ra --durations=25 -n "${BENCHPIPE_TEST_WORKERS:-2}" --dist loadgroup "$@"
rc=$?
set -e
# pytest's 5 means no test ran: a failure for us.
[ "$rc" = 5 ] && echo "no tests ran" && exit 1
exit "$rc"
