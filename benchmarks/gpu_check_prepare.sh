#!/bin/sh
# Put the pure-Python wheels the GPU check needs into .whl/ (ignored by git), for a CUDA machine
# without network whose Python already has torch (with CUDA), timm, transformers, pandas, pyarrow,
# scipy, scikit-learn, matplotlib, pillow, pyyaml and tqdm, but not the rest of synthclone's
# dependencies. The versions are the ones installed in this checkout's .venv; PYTHON_VERSION is the
# CUDA machine's Python (default 3.12). 14 MB in all (measured). Then, on that machine:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site \
#     && python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site . \
#     && python3 benchmarks/gpu_check.py
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
mkdir -p .whl
specs=$($PY - <<'PYEOF'
from importlib.metadata import version
names = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "diffusers", "open_clip_torch",
         "ftfy", "wcwidth", "nltk", "setuptools"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PYEOF
)
for spec in $specs; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
du -sh .whl
