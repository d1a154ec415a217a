#!/bin/sh
# Debian packages synthclone's embedded world reads: real images and WordNet.
# Installs them when apt is usable as root; otherwise prints the command to run.
PKGS="dataset-fashion-mnist wordnet-base"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "synthclone setup: installing Debian packages:$missing"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || { echo "synthclone setup: apt-get install$missing failed; run it by hand" >&2; exit 1; }
else
  echo "synthclone setup: please run:  sudo apt-get install$missing" >&2
  echo "(Fashion-MNIST can also come from torchvision's download; WordNet is needed for prompt strategies)" >&2
fi
