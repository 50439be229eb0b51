"""percetrain's `bm25_lamp` retrieval against rank_bm25's BM25Okapi used the way LaMP's
rank_profiles.py uses it (LaMP 1, 3, 4, 5, 7, and the two LongLaMP presets percetrain maps): corpus texts and queries built per task from the raw fields, tokens by
str.split(), ranking by get_top_n (np.argsort(scores)[::-1]). Read from `inspect-data`, which
prints every retrieved item's profile index and score, on LaMP-shaped records (profiles of 5-30
items, a few of 40-70; repeated words, duplicate items, items without query terms, terms in most
items (negative idf), case and punctuation variants, Unicode whitespace).

Tie order: LaMP pins numpy 1.24.2, whose argsort is an introsort; percetrain reproduces it. numpy
2.x on AVX2 / AVX-512 machines sorts with SIMD code (x86-simd-sort) that orders tied scores
differently. numpy 2.4.6 with its dispatched CPU features turned off (NPY_DISABLE_CPU_FEATURES)
runs the same introsort as 1.24.2, which this test confirms on the numpy 1.24.2 goldens
(tests/golden/data/numpy_argsort.jsonl) before it ranks with it. The default (SIMD) order is
compared too: equal up to the order inside groups of tied scores, and the count of profiles
whose tie order differs is printed."""
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Checks, Workdir, percetrain, skip  # noqa: E402

try:
    import numpy as np
    import rank_bm25
    from rank_bm25 import BM25Okapi
except ImportError as e:
    skip(f"{e.name} is missing from the reference environment; bash scripts/setup.sh --venv installs requirements.txt")

ARGSORT_GOLDENS = ROOT / "tests" / "golden" / "data" / "numpy_argsort.jsonl"

# ---- LaMP's corpus and query per task (LaMP/rank_profiles.py and LaMP/prompts/utils.py) ----------


def after(marker, text):
    at = text.find(marker)
    return text[at + len(marker):].strip()


def quoted(text):
    out, inside, current = [], False, ""
    for ch in text:
        if ch == '"':
            if inside:
                out.append(current)
                current = ""
            inside = not inside
        elif inside:
            current += ch
    return out


TASKS = {
    # preset: (profile fields, corpus of an item, query of an input, input made from a query)
    "lamp1": (["title", "abstract"], lambda x: f'{x["title"]} {x["abstract"]}',
              lambda inp: f"{quoted(inp)[1]} {quoted(inp)[2]}",
              lambda q: ('For an author who has written the paper with the title "A study", which reference is '
                         f'related? Just answer with [1] or [2] without explanation. [1]: "{q[0]}" [2]: "{q[1]}"')),
    "lamp3": (["text", "score"], lambda x: f'{x["text"]}', lambda inp: after("review:", inp),
              lambda q: ("What is the score of the following review on a scale of 1 to 5? just answer with 1, 2, 3, "
                         f"4, or 5 without further explanation. review: {q[0]} {q[1]}")),
    "lamp4": (["title", "text"], lambda x: f'{x["title"]} {x["text"]}', lambda inp: after("article:", inp),
              lambda q: f"Generate a headline for the following article: {q[0]} {q[1]}"),
    "lamp5": (["title", "abstract"], lambda x: f'{x["title"]} {x["abstract"]}', lambda inp: after(":", inp),
              lambda q: f"Generate a title for the following abstract of a paper: {q[0]} {q[1]}"),
    "lamp7": (["text"], lambda x: f'{x["text"]}', lambda inp: after(":", inp),
              lambda q: f"Paraphrase the following tweet without any explanation before or after it: {q[0]} {q[1]}"),
    # LongLaMP publishes no retrieval code; percetrain follows the public reproduction's prompt
    # code (docs/data.md, "Retrieval"), with the same BM25Okapi and get_top_n.
    "longlamp_product_review": (["overall", "summary", "description", "reviewText"],
                                lambda x: f'{x["overall"]} {x["summary"]} {x["description"]} {x["reviewText"]}',
                                lambda inp: inp,
                                lambda q: ("Generate the review text written by a reviewer who has given an overall "
                                           f'rating of 4.0 for a product with description "{q[0]}". The summary of the '
                                           f'review text is "{q[1]}".')),
    "longlamp_abstract_generation": (["title", "abstract"], lambda x: f'{x["title"]} {x["abstract"]}',
                                     lambda inp: after("items:", inp),
                                     lambda q: f"Generate an abstract for the title using the following items: {q[0]} {q[1]}"),
}

# ---- LaMP-shaped records ------------------------------------------------------------------------

COMMON = ["the", "a", "of", "and", "to"]  # in most items: negative idf, floored to 0.25 x mean idf
WORDS = ["kettle", "Kettle", "kettle!", "kettle,", "price", "prices", "rise", "storm", "coast", "election", "vote",
         "model", "models", "language", "user", "users", "review", "café", "Café", "naïve", "2014", "5.0", "(beta)",
         "train", "training", "news"]
SPACES = [" "] * 12 + ["  ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\u0085", "\x1c"]


def text_of(rng, count, common=0.35):
    words = []
    for _ in range(count):
        words.append(rng.choice(COMMON) if rng.random() < common else rng.choice(WORDS))
    out = ""
    for i, w in enumerate(words):
        out += (rng.choice(SPACES) if i else "") + w
    return out


def make_records(preset, rng, sizes):
    fields = TASKS[preset][0]
    records = []
    for r, size in enumerate(sizes):
        # Every third profile mostly of common words: most terms in most items, so the mean idf and
        # the floor of negative idfs are negative, and matching a common term lowers a score.
        common = 1.0 if r % 3 == 2 else 0.35
        profile = []
        for k in range(size):
            if profile and rng.random() < 0.2:
                item = dict(rng.choice(profile))  # a duplicate: tied scores by construction
            else:
                item = {f: text_of(rng, rng.randint(0 if f == "text" else 1, 4 if f == "title" else 14), common)
                        for f in fields}
                if "score" in item:
                    item["score"] = str(rng.randint(1, 5))
                if "overall" in item:
                    item["overall"] = float(rng.randint(1, 5))  # a JSON number, 4.0, as in LongLaMP's data
            item["id"] = f"{r}-{k}"
            profile.append(item)
        if not any(TASKS[preset][1](x).split() for x in profile):
            profile[0][fields[0]] = "kettle"  # rank_bm25 divides by the mean length
        query = [text_of(rng, rng.randint(1, 4), common), text_of(rng, rng.randint(0, 4))]
        if rng.random() < 0.15:
            query = ["zebra", "unicorn"]  # no term in any item: every score ties at 0
        records.append({"id": f"{preset}-{r}", "input": TASKS[preset][3](query), "output": "A reply.",
                        "profile": profile})
    return records


# ---- both sides ---------------------------------------------------------------------------------

ITEM_LINE = re.compile(r"^  #(\d+) profile\[(\d+)\] score (\S+?)(?: \((?:cut|left out)\))?: ")


def percetrain_rankings(folder, preset, records):
    data = folder / f"{preset}.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    config = folder / f"{preset}.json"
    config.write_text(json.dumps({
        "model": {"path": str(folder / "unused-model")},
        "tokenizer": {"path": str(ROOT / "data" / "tokenizer")},
        "data": {"train_file": str(data), "preset": preset, "retrieval": "bm25_lamp", "top_k": 1000,
                 "max_length": 1000000}}))
    out = percetrain("inspect-data", "--config", config, "--limit", len(records)).stdout
    rankings = []
    for line in out.splitlines():
        if line.startswith("=== record "):
            rankings.append([])
        m = ITEM_LINE.match(line)
        if m:
            rankings[-1].append((int(m.group(2)), float(m.group(3))))
    return rankings


def lamp_inputs(preset, record):
    corpus_of, query_of = TASKS[preset][1], TASKS[preset][2]
    return [corpus_of(x).split() for x in record["profile"]], query_of(record["input"]).split()


# Run in a child process with numpy's dispatched CPU features (the SIMD sorts) turned off: numpy's
# portable introsort, the one numpy 1.24.2 has. Reads JSON {"goldens": [...], "cases": [...]}.
PORTABLE_CHILD = r"""
import json, sys
import numpy as np
from rank_bm25 import BM25Okapi
job = json.load(sys.stdin)
goldens_bad = sum(np.argsort(np.array(g["values"])).tolist() != g["argsort"] for g in job["goldens"])
rankings = []
for corpus, query in job["cases"]:
    bm25 = BM25Okapi(corpus)
    rankings.append([int(i) for i in bm25.get_top_n(query, list(range(len(corpus))), n=len(corpus))])
from numpy._core import _multiarray_umath as m
print(json.dumps({"goldens_bad": int(goldens_bad), "rankings": rankings,
                  "dispatch": [f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]}))
"""


def portable_rankings(cases, goldens):
    from numpy._core import _multiarray_umath as m

    disabled = [f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(disabled))
    result = subprocess.run([sys.executable, "-c", PORTABLE_CHILD], input=json.dumps({"goldens": goldens, "cases": cases}),
                            capture_output=True, text=True, env=env, check=True)
    return disabled, json.loads(result.stdout)


def tie_groups(ranking, scores):
    """The ranking as a list of (score, sorted indices) groups of equal scores, in rank order."""
    groups = []
    for i in ranking:
        if groups and groups[-1][0] == scores[i]:
            groups[-1][1].append(i)
        else:
            groups.append((scores[i], [i]))
    return [(s, sorted(ix)) for s, ix in groups]


def main():
    checks = Checks("Reference.retrieval")
    print(f"rank_bm25 {getattr(rank_bm25, '__version__', '0.2.2')} BM25Okapi (k1 1.5, b 0.75, epsilon 0.25), "
          f"numpy {np.__version__}", flush=True)
    rng = random.Random(23)
    cases, ours, meta = [], [], []
    with Workdir("retrieval") as folder:
        for preset in TASKS:
            sizes = [rng.randint(5, 30) for _ in range(10)] + [rng.randint(40, 70)]
            records = make_records(preset, rng, sizes)
            got = percetrain_rankings(folder, preset, records)
            checks.equal(f"{preset}: one ranking of every item per record", [len(g) for g in got],
                         [len(r["profile"]) for r in records])
            for record, ranking in zip(records, got):
                cases.append(lamp_inputs(preset, record))
                ours.append(ranking)
                meta.append(preset)

    goldens = [json.loads(line) for line in ARGSORT_GOLDENS.read_text().splitlines() if line.strip()]
    disabled, portable = portable_rankings(cases, goldens)
    checks.true("numpy without its SIMD sorts reproduces numpy 1.24.2's argsort (LaMP's pin)",
                portable["goldens_bad"] == 0 and not portable["dispatch"],
                f"{len(goldens) - portable['goldens_bad']} of {len(goldens)} tie-heavy golden arrays equal "
                f"(NPY_DISABLE_CPU_FEATURES='{' '.join(disabled)}'; still dispatched: {portable['dispatch']})")

    score_diffs, our_scores, lib_scores = [], [], []
    exact = tie_equal = simd_order = 0
    ties = negatives = large = 0
    for (corpus, query), ranking, portable_ranking, preset in zip(cases, ours, portable["rankings"], meta):
        bm25 = BM25Okapi(corpus)
        scores = bm25.get_scores(query)
        default_ranking = [int(i) for i in bm25.get_top_n(query, list(range(len(corpus))), n=len(corpus))]
        indices = [i for i, _ in ranking]
        for i, s in ranking:
            our_scores.append(s)
            lib_scores.append(float(scores[i]))
        exact += indices == portable_ranking
        tie_equal += tie_groups(indices, scores) == tie_groups(default_ranking, scores)
        simd_order += indices == default_ranking
        ties += len(set(scores.tolist())) < len(corpus)
        negatives += bool((scores < 0).any())
        large += len(corpus) > 16
    n = len(cases)
    checks.close("scores = BM25Okapi.get_scores (inspect-data prints 4 decimals)", our_scores, lib_scores,
                 atol=5e-5 + 1e-12)
    checks.true("ranking = get_top_n with numpy's portable argsort (numpy 1.24.2's order, as LaMP pins)",
                exact == n, f"{exact} of {n} profiles in the same order")
    checks.true(f"ranking = get_top_n with numpy {np.__version__}'s default argsort, up to the order of tied scores",
                tie_equal == n, f"{tie_equal} of {n} profiles equal as groups of tied scores; the whole order equal in "
                                f"{simd_order} of {n} (the rest differ only inside ties: numpy's SIMD argsort orders "
                                f"them differently from numpy 1.24.2's)")
    checks.true("profiles exercise ties, negative-idf scores and the introsort's partitioning (> 16 items)",
                ties >= n // 2 and negatives >= 5 and large >= len(TASKS),
                f"{ties} profiles with tied scores, {negatives} with scores below 0, {large} with more than 16 items, "
                f"of {n}")
    checks.finish()


if __name__ == "__main__":
    main()
