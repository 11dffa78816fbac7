#!/usr/bin/env bash
# Makes this machine ready to run hybridps: Node dependencies, and a Vulkan driver for Dawn.
# Idempotent and quick when everything is already there. On a machine without a GPU driver it
# installs Mesa 25's software Vulkan (lavapipe) from Debian bookworm-backports: bookworm's own
# Mesa 22 is too old for Dawn.
#
#   bash scripts/setup.sh [--browser]    set up (the test command passes --browser)
#   bash scripts/setup.sh --check-vulkan exit 0 if a usable Vulkan driver is there, 1 if not; changes nothing
#
# Under pipefail, never pipe into a reader that stops early (`cmd | grep -q`, `| head`): it exits
# at the first match, cmd then dies of SIGPIPE, and the pipeline counts as failed although the
# match was found (seen as "Mesa >= 25 Vulkan is still not available" with Mesa 25 installed).
# Capture the output first, then match it. test/scripts-shell.test.ts checks every script for this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Vulkan: a vendor ICD (NVIDIA, AMD, Intel) or Mesa >= 25 is fine as is.
have_vendor_icd() {
  local f
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    [ -e "$f" ] && return 0
  done
  return 1
}
mesa_version() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null) || true
  sed -E 's/^[0-9]+://; s/[^0-9.].*//' <<<"$v"
}
have_vulkan_loader() {
  local libs
  libs=$(ldconfig -p 2>/dev/null) || true
  [[ $libs == *libvulkan.so.1* ]]
}
mesa_ok() {
  local v; v=$(mesa_version)
  [ -n "$v" ] && [ "${v%%.*}" -ge 25 ] && have_vulkan_loader
}

if [ "${1:-}" = "--check-vulkan" ]; then
  if have_vendor_icd || mesa_ok; then exit 0; else exit 1; fi
fi

# 1. Node dependencies (npm ci when node_modules is missing or older than the lockfile).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] installing Node dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# 2. With --browser (the test command passes it): the system tools some tests need, from Debian
#    when this is root on Debian: Chromium (the report test), iproute2's `ip` (the separate-host
#    tests' network namespaces, test/helpers/netns.ts), openssl (the TLS tests' certificates).
install_for_tests() { # COMMAND PACKAGE WHAT-FOR
  command -v "$1" >/dev/null && return 0
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian's $2 ($3)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
  else
    echo "[setup] $3 needs $2 (as root): apt-get install $2" >&2
  fi
}
if [ "${1:-}" = "--browser" ]; then
  install_for_tests chromium chromium "the report test's headless browser"
  install_for_tests ip iproute2 "the separate-host tests' network namespaces"
  install_for_tests openssl openssl "the certificates of the TLS tests and of launch --tls"
fi

# 3. Vulkan (the checks are defined at the top).

if [ "${HYBRIDPS_SKIP_VULKAN_SETUP:-}" = "1" ] || have_vendor_icd || mesa_ok; then
  exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  cat >&2 <<MSG
[setup] No usable Vulkan driver found (need a GPU driver, or Mesa >= 25 lavapipe; found mesa-vulkan-drivers '$(mesa_version)').
        On Debian bookworm, as root:
          add the bookworm-backports suite, then
          apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1
MSG
  exit 1
fi

echo "[setup] installing Mesa software Vulkan (lavapipe) from bookworm-backports" >&2
src=/etc/apt/sources.list.d/debian.sources
dst=/etc/apt/sources.list.d/bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [ -f "$src" ]; then
    awk 'BEGIN{RS="";ORS="\n\n"} NR==1' "$src" | sed 's/^Suites:.*/Suites: bookworm-backports/' > "$dst"
  else
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
  fi
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >&2
mesa_ok || { echo "[setup] Mesa install finished but Mesa >= 25 Vulkan is still not available ($(mesa_version))" >&2; exit 1; }
echo "[setup] Vulkan ready: mesa-vulkan-drivers $(mesa_version)" >&2
