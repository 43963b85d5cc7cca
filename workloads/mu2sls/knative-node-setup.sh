#!/bin/bash
# The mu2sls artifact on the Knative node, for the commands the experiments run there
# (stack.knative in config/experiments/mu2sls/_mu2sls.yaml: scripts/clear_db.py between points,
# populate_media.py / populate_hotel.py after a deploy). Run by the knative deployer over SSH before
# each point, with the folder as $1; it returns at once when the folder is already there.
# eniac/mu2sls at d75b89f, laid out as its scripts/upload-to-remote.sh does: scripts/knative/*,
# runtime/, scripts/, tests/* (and experiments/*, where its eval scripts and populate_*.py are).
set -ex
dir="${1:?the artifact folder on the node}"
python3 -c "import fdb, httpx" 2>/dev/null \
  || pip3 install foundationdb==6.3.23 httpx \
  || pip3 install --break-system-packages foundationdb==6.3.23 httpx
[ -f "$dir/scripts/clear_db.py" ] && exit 0
rm -rf ~/mu2sls
git clone https://github.com/eniac/mu2sls.git ~/mu2sls
git -C ~/mu2sls checkout d75b89f7583cfb5cf969427b0a4e4813e59db76c
mkdir -p "$dir"
cp -r ~/mu2sls/scripts/knative/. "$dir"/
cp -r ~/mu2sls/runtime ~/mu2sls/scripts "$dir"/
cp -r ~/mu2sls/tests/. "$dir"/
cp -r ~/mu2sls/experiments/. "$dir"/
