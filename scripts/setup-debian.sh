#!/usr/bin/env bash
# Installs what procmem needs on Debian/Ubuntu when it is missing: a Vulkan driver that works
# without a GPU (Mesa's lavapipe), the Vulkan loader, and Xvfb for headless screenshots.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in mesa-vulkan-drivers libvulkan1 "$@"; do
  have_pkg "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "procmem setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "procmem setup: cargo is missing. Install Rust 1.95 or newer (https://rustup.rs), then run this again." >&2
  exit 1
fi
