#!/bin/bash
# The test bed's stand-in of workloads/mu2sls/knative-node-setup.sh: lays out, in the artifact's
# folder ($1), the contract's stand-ins of the artifact scripts the experiments run there
# (scripts/clear_db.py, seq.py), found beside the contract kn on PATH. No network.
set -ex
dir="${1:?the artifact folder on the node}"
src="$(dirname "$(readlink -f "$(command -v kn)")")/../artifact"
mkdir -p "$dir"
cp -r "$src"/. "$dir"/
