#!/usr/bin/env bash
# The MONAI Label app's integration tests against a real server, as CI runs them after the main suite.
#
# Builds the MONAI Label environment `.label-venv` in the project root (git-ignored) from
# apps/monailabel/requirements-label.txt with the recipe of apps/monailabel/README.md, or reuses it when it was
# built from the same requirements; then runs `pytest -m monailabel tests/apps` with the current `python` (the
# project's environment) and MONAI_MASKSUP_LABEL_PYTHON pointing at the label environment, so that a broken
# environment fails the tests instead of skipping them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."

requirements=apps/monailabel/requirements-label.txt
# installed with --no-deps: their declared requirements do not resolve here (see requirements-label.txt)
no_deps=(monailabel==0.8.5 pydicom-seg==0.4.1)
venv=.label-venv
stamp="$venv/requirements.sha256"
# comments and blank lines of the requirements do not count
wanted=$({ grep -v -e '^\s*#' -e '^\s*$' "$requirements"; echo "${no_deps[*]}"; python3.11 --version; } | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && "$venv/bin/python" -c "import monailabel" 2>/dev/null; then
    echo "+ reusing $venv (built from the same requirements)"
else
    start=$SECONDS
    rm -rf "$venv"
    echo "+ building $venv from $requirements"
    python3.11 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$requirements"
    "$venv/bin/pip" install --quiet --no-deps "${no_deps[@]}"
    # pip then reports that monai_masksup asks for numpy>=2.4.6: expected, it runs on the 1.26 of this set
    "$venv/bin/pip" install --quiet --no-deps -e .
    echo "$wanted" > "$stamp"
    echo "+ built $venv in $((SECONDS - start)) s"
fi

export MONAI_MASKSUP_LABEL_PYTHON="$PWD/$venv/bin/python"
echo "+ MONAI_MASKSUP_LABEL_PYTHON=$MONAI_MASKSUP_LABEL_PYTHON python -m pytest -q -m monailabel tests/apps $*"
exec python -m pytest -q -m monailabel tests/apps "$@"
