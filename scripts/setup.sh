#!/usr/bin/env bash
# Development set-up: a .venv with the pinned torch/torchvision and prunekit installed
# editable with its dev extras. Safe to run again: pip skips what is already satisfied.
#   bash scripts/setup.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Pinned development versions of the heavy dependencies.
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
VENV=".venv"

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1

pick_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "setup.sh: need Python >= 3.10 (python3.11 preferred); none found on PATH" >&2
    return 1
}

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    :
else
    PYTHON="$(pick_python)"
    if [[ -e "$VENV" ]]; then
        echo "setup.sh: $VENV exists but its python does not run; recreating it with $PYTHON" >&2
    else
        echo "setup.sh: creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
    fi
    if ! "$PYTHON" -m venv --clear "$VENV"; then
        echo "setup.sh: '$PYTHON -m venv' failed; on Debian/Ubuntu install the venv module" \
             "(apt-get install python3-venv) and run again" >&2
        exit 1
    fi
fi

PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" install -q -e '.[dev]'

echo "setup.sh: ready: $("$VENV/bin/python" -c 'import torch, torchvision; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")')"
