#!/usr/bin/env bash
# One entry point for the two README commands:
#   bash scripts/dev.sh demo   -> set up .venv if needed, then run `gtlomics demo`
#   bash scripts/dev.sh test   -> set up .venv if needed, build the docs (so a broken docstring
#                                 fails), then run the test suite
#   bash scripts/dev.sh docs   -> set up .venv if needed, then build the API reference (Sphinx,
#                                 offline, warnings are errors) into docs/_build/html
# Set-up installs the CPU build torch==2.13.0 unless a torch is already importable in the venv
# (so a GPU user who put a CUDA build there keeps it). GTLOMICS_VENV picks another venv folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GTLOMICS_VENV:-$root/.venv}"
cd "$root"

setup() {
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  local py="$venv/bin/python"
  local stamp="$venv/.gtlomics-installed"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    return 0
  fi
  "$py" -m pip install -q --upgrade pip >/dev/null
  if ! "$py" -c "import torch" >/dev/null 2>&1; then
    "$py" -m pip install -q "torch==${GTLOMICS_TORCH_VERSION:-2.13.0}"
  fi
  "$py" -m pip install -q -e ".[dev]"
  touch "$stamp"
}

build_docs() {
  "$venv/bin/python" -m sphinx -W --keep-going -q -b html docs docs/_build/html "$@"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  demo)
    setup
    exec "$venv/bin/gtlomics" demo "$@"
    ;;
  test)
    setup
    build_docs
    exec "$venv/bin/python" -m pytest "$@"
    ;;
  docs)
    setup
    build_docs "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: bash scripts/dev.sh {demo|test|docs|setup} [args...]" >&2
    exit 2
    ;;
esac
