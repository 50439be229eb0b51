#!/usr/bin/env bash
# Runs one reference test (a Python script beside this file) with the project's pinned Python
# environment (.venv, made by scripts/setup.sh from requirements.txt). Where that environment is
# absent the test is skipped (exit 77, which CTest reports as skipped) with one line saying how to
# install it. Usage: run.sh SCRIPT.py [ARGS...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${PERCETRAIN_REFERENCE_PYTHON:-$root/.venv/bin/python}"
if [[ ! -x "$py" ]]; then
  echo "SKIP: the reference environment $py is absent; bash scripts/setup.sh --venv installs it (requirements.txt)"
  exit 77
fi
exec "$py" "$@"
