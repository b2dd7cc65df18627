# Build environment shared by scripts/test, scripts/demo and .ci/run (sourced, not run).
#
# One target dir outside the checkout, so a fresh clone on the same machine rebuilds
# incrementally instead of recompiling DuckDB (~20 minutes) from scratch; ccache for the C++,
# which brings a DuckDB rebuild down to about two minutes when the target dir is lost.
# CC and CXX are part of DuckDB's build fingerprint: they must be the same on every run, or
# cargo recompiles DuckDB, so ccache is installed before they are set, never optionally.

# Installs Debian packages that are missing (apt-get only when needed; root or sudo).
need_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

need_debs build-essential ccache pkg-config
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/warmlake-target}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
export CC="ccache gcc" CXX="ccache g++"
# The virtualenv of the DuckLake differential tests (scripts/test makes it; see tests/ducklake).
export DUCKLAKE_VENV="${WARMLAKE_DUCKLAKE_VENV:-$HOME/.cache/warmlake-ducklake-venv}"
