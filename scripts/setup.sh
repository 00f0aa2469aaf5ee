#!/usr/bin/env bash
# Sets up a fresh Debian bookworm machine for infer: the npm packages, the CLI bundle, and
# the WebGPU software driver (Mesa lavapipe from bookworm-backports; bookworm's own Mesa
# 22.3 is too old for Dawn). Idempotent: safe to run again. Without root it still installs
# the npm packages, so `--backend cpu` works, and says what it could not install.
set -euo pipefail
cd "$(dirname "$0")/.."

have_lavapipe() {
  # Mesa >= 25 from backports ships lvp_icd.*.json; bookworm's 22.3 is refused by Dawn.
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^25\.'
}

missing_driver=0

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  # npm ci refuses this lock when the registry lacks an optional dependency it names (vite's
  # Windows-only napi-windows-process-start-time is missing from some mirrors); npm install then
  # installs the same locked versions and leaves the lock unchanged.
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund || { echo "setup: npm ci failed; retrying with npm install (same lock)" >&2; npm install --no-audit --no-fund; }
  else
    npm install --no-audit --no-fund
  fi
fi
# node-llama-cpp (llama.cpp for the agreement tests) ships prebuilt CPU binaries as optional
# packages. Its postinstall only probes them and would try to build llama.cpp from source if
# that failed, so package.json's config skips it; check here that the prebuilt CPU build loads.
if ! node scripts/check-llamacpp.mjs; then
  echo "setup: node-llama-cpp's prebuilt CPU llama.cpp does not load (is @node-llama-cpp/linux-x64 installed?)" >&2
  exit 1
fi
# The CLI runs from one bundled file (scripts/build.mjs): ~0.4 s to start instead of ~3 s.
npm run --silent build
# The README's text example: a random-weight llama around the Llama 2 vocabulary, written
# here (about 5 MB under .tmp/example/, never committed).
npx tsx scripts/make-example-model.ts

if have_lavapipe; then
  echo "setup: Mesa lavapipe from bookworm-backports already installed"
elif [ "$(id -u)" != "0" ]; then
  cat >&2 <<'MSG'
setup: the WebGPU software driver (Mesa lavapipe from bookworm-backports) is missing
and this script is not running as root, so it cannot install it. The npm packages are
installed and `infer ... --backend cpu` works; for WebGPU either re-run as root:
    sudo bash scripts/setup.sh
or install it yourself, then re-run this script:
    see "WebGPU on the CPU" in the README (apt-get install -t bookworm-backports mesa-vulkan-drivers)
MSG
  missing_driver=1
else
  echo "setup: installing Mesa lavapipe from bookworm-backports"
  if [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
    uri=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    uri=${uri:-http://deb.debian.org/debian}
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
      > /etc/apt/sources.list.d/backports.sources
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  have_lavapipe || { echo "setup: mesa-vulkan-drivers from backports did not install" >&2; exit 1; }
fi

# The CUDA tests compile kernels with nvcc (shipped with this machine image at /usr/local/bin)
# and run them on the CPU with g++; g++ comes from Debian when missing.
if ! command -v g++ >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  else echo "setup: g++ is missing (apt-get install g++); the CUDA tests need it" >&2; exit 1; fi
fi
command -v "${NVCC:-/usr/local/bin/nvcc}" >/dev/null 2>&1 || echo "setup: warning: nvcc not found at ${NVCC:-/usr/local/bin/nvcc}; the CUDA compile test will fail" >&2

# The browser test (test/browser/) drives Debian's Chromium headless: WebGPU on its SwiftShader adapter.
if command -v chromium >/dev/null 2>&1; then
  echo "setup: chromium already installed"
elif [ "$(id -u)" = "0" ]; then
  echo "setup: installing chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "setup: chromium is missing and this script is not root (apt-get install chromium); the browser test needs it" >&2
  missing_driver=1
fi

if [ "$missing_driver" = 1 ]; then echo "setup: done, except the WebGPU driver (see above)" >&2; exit 1; fi
echo "setup: done"
