#!/usr/bin/env python3
"""Writes tests/golden/data/numpy_argsort.jsonl: np.argsort of tie-heavy float arrays.

LaMP ranks profile items with rank_bm25's get_top_n, i.e. np.argsort(scores)[::-1], so the order
of tied scores is whatever numpy's default (introsort) argsort leaves. LaMP pins numpy 1.24.2.
numpy 1.25 and later sort with SIMD code on AVX2 / AVX-512 machines, which orders ties otherwise;
with its dispatched CPU features turned off (NPY_DISABLE_CPU_FEATURES) numpy 2.4.6 runs the
introsort of 1.24.2 again and writes the same file byte for byte. So either interpreter works:
    .venv/bin/python scripts/make_argsort_goldens.py [--check]     (the pinned numpy 2.4.6)
    /usr/bin/python3 scripts/make_argsort_goldens.py [--check]     (Debian's numpy 1.24.2)
--check compares with the committed file instead of writing it. percetrain's numpy_argsort
(src/data/retrieval.cpp) must reproduce every line; Reference.retrieval checks the file against
numpy as well.
"""
import json
import os
import pathlib
import random
import sys

import numpy as np

if not np.__version__.startswith("1.24."):
    from numpy._core import _multiarray_umath as umath

    active = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    if active:  # start again with the SIMD code paths off (numpy reads the variable at import)
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(active))
        if os.environ.get("NPY_DISABLE_CPU_FEATURES"):
            sys.exit(f"numpy {np.__version__} still dispatches {active}; cannot reproduce numpy 1.24.2's argsort")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden" / "data" / "numpy_argsort.jsonl"
rng = random.Random(17)
cases = []
# Sizes around the insertion-sort cut-off (16) and larger; few distinct values so ties abound;
# some arrays all-equal, some with BM25-like zeros, one sorted and one reversed.
for n in [1, 2, 5, 16, 17, 18, 20, 31, 33, 50, 64, 100, 129, 300]:
    for distinct in [1, 2, 3, 7]:
        cases.append([float(rng.randrange(distinct)) for _ in range(n)])
    cases.append([0.0 if rng.random() < 0.6 else round(rng.uniform(0, 5), 3) for _ in range(n)])
cases.append([float(i // 3) for i in range(90)])
cases.append([float(-(i // 4)) for i in range(90)])
text = "".join(json.dumps({"values": values, "argsort": np.argsort(np.array(values)).tolist()}) + "\n"
               for values in cases)
if sys.argv[1:] == ["--check"]:
    same = out.read_text() == text
    print(f"{out}: {'unchanged' if same else 'DIFFERS'} under numpy {np.__version__}")
    sys.exit(0 if same else 1)
out.write_text(text)
print(f"wrote {len(cases)} cases to {out} with numpy {np.__version__}")
