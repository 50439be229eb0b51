#!/usr/bin/env python3
"""Writes tests/golden/data/numpy_argsort.jsonl: np.argsort of tie-heavy float arrays.

LaMP ranks profile items with rank_bm25's get_top_n, i.e. np.argsort(scores)[::-1], so the order
of tied scores is whatever numpy's default (introsort) argsort leaves. LaMP pins numpy 1.24.2,
which is Debian 12's python3-numpy; run this with Debian's interpreter:
    /usr/bin/python3 scripts/make_argsort_goldens.py
percetrain's numpy_argsort (src/data/retrieval.cpp) must reproduce every line.
"""
import json
import pathlib
import random

import numpy as np

assert np.__version__ == "1.24.2", f"want LaMP's numpy 1.24.2, got {np.__version__}"
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
with out.open("w") as f:
    for values in cases:
        f.write(json.dumps({"values": values, "argsort": np.argsort(np.array(values)).tolist()}) + "\n")
print(f"wrote {len(cases)} cases to {out}")
