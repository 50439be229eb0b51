"""Shared pieces of the reference tests: each test_*.py here checks percetrain against the
library people use (transformers, peft, tokenizers, sentencepiece, rouge-score, sacrebleu,
NLTK, rank_bm25), runs from CTest through run.sh, prints its worst difference per check and
exits non-zero when a check fails (77, shown as skipped, only when something it needs is absent).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
BINARY = Path(os.environ.get("PERCETRAIN_BINARY", ROOT / "build" / "percetrain"))
SKIP = 77


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def require_fixture(relative):
    path = SHARED_FIXTURES / relative
    if not path.exists():
        skip(f"{path} is absent (the shared fixtures live outside the repository, in ../shared/fixtures)")
    return path


def percetrain(*args, check=True, cwd=None, env=None):
    """Runs the binary under test; returns the CompletedProcess (text). A failure is an error
    with the command and its output, unless check=False."""
    cmd = [str(BINARY), *map(str, args)]
    full_env = dict(os.environ, **(env or {}))
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=full_env)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class Workdir:
    """A fresh folder for one test's files, removed at exit unless PERCETRAIN_KEEP_REFERENCE=1."""

    def __init__(self, name):
        base = Path(os.environ.get("PERCETRAIN_BUILD_DIR", ROOT / "build")) / "reference-tests"
        base.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=name + "-", dir=base))

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("PERCETRAIN_KEEP_REFERENCE") != "1":
            shutil.rmtree(self.path, ignore_errors=True)
        return False


class Checks:
    """Collects named comparisons, prints one line each with the worst difference, and exits
    non-zero at finish() if any failed."""

    def __init__(self, title):
        self.title = title
        self.failed = []
        self.count = 0

    def _report(self, name, ok, detail):
        self.count += 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            self.failed.append(name)
        return ok

    def close(self, name, got, want, atol, rtol=0.0):
        """Element-wise |got - want| <= atol + rtol * |want| over two array-likes of one shape."""
        import numpy as np

        got = np.asarray(got, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            return self._report(name, False, f"shape {got.shape} != reference {want.shape}")
        if got.size == 0:
            return self._report(name, False, "nothing to compare")
        diff = np.abs(got - want)
        bound = atol + rtol * np.abs(want)
        finite = np.isfinite(got).all() and np.isfinite(want).all()
        worst = float(diff.max())
        rel = float((diff / np.maximum(np.abs(want), 1e-30)).max())
        ok = bool(finite and (diff <= bound).all())
        return self._report(name, ok, f"worst |diff| {worst:.3g}, worst rel {rel:.3g} over {got.size} values "
                                      f"(tolerance {atol:g} + {rtol:g}*|ref|)")

    def equal(self, name, got, want):
        ok = got == want
        detail = "identical" if ok else f"differs:\n  percetrain: {str(got)[:400]}\n  reference:  {str(want)[:400]}"
        return self._report(name, ok, detail)

    def true(self, name, condition, detail):
        return self._report(name, bool(condition), detail)

    def finish(self):
        if self.count == 0:
            print(f"FAIL {self.title}: no check ran")
            sys.exit(1)
        if self.failed:
            print(f"{self.title}: {len(self.failed)} of {self.count} checks failed: {', '.join(self.failed)}")
            sys.exit(1)
        print(f"{self.title}: all {self.count} checks within tolerance")
        sys.exit(0)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
