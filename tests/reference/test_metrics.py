"""percetrain eval against rouge-score (ROUGE-1/2/L/Lsum F-measure, with and without use_stemmer),
sacrebleu (corpus BLEU, default 13a tokenizer) and NLTK's meteor_score (on Debian's WordNet 3.0),
per example and averaged, on the demo test set (references: the records' outputs; predictions:
seeded edits of them) and a few hundred generated pairs (shared words, stems, synonyms, case,
numbers, punctuation, clitics, non-ASCII letters, newlines for ROUGE-Lsum, empty predictions).
METEOR's tokens are percetrain's documented meteor tokenizer (eval_util.meteor_tokens)."""
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Checks, Workdir, percetrain, read_jsonl, skip  # noqa: E402
import eval_util  # noqa: E402

try:
    import nltk
    import sacrebleu
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer
except ImportError as e:
    skip(f"{e.name} is missing from the reference environment; bash scripts/setup.sh --venv installs requirements.txt")
if eval_util.missing_wordnet():
    skip(f"{eval_util.missing_wordnet()} is absent: METEOR needs Debian's wordnet-base (scripts/setup.sh installs it)")

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
METRICS = ROUGE_TYPES + ["meteor"]

# ---- inputs ----------------------------------------------------------------------------------

FUNCTION = "the a an of and to in is it was for on with this that but not very".split()
# Families of words that share a Porter stem, are WordNet synonyms, or irregular forms.
FAMILIES = [
    ["run", "running", "runs", "ran", "runner"], ["study", "studies", "studied", "studying", "student"],
    ["happy", "happiness", "happily"], ["connect", "connected", "connection", "connections"],
    ["generalize", "generalization", "generalizations", "general"], ["relational", "relate", "relation"],
    ["quick", "quickly", "fast", "rapid"], ["car", "automobile", "auto", "cars"], ["big", "large", "huge"],
    ["film", "movie", "films"], ["good", "great", "better", "best"], ["buy", "purchase", "bought"],
    ["begin", "start", "commence", "began"], ["child", "children", "kid", "kids"],
    ["mouse", "mice"], ["goose", "geese"], ["review", "reviews", "reviewed", "critique"],
    ["battery", "batteries"], ["clean", "cleaned", "tidy", "spotless"], ["model", "models", "modelling"],
]
NUMBERS = ["1", "2", "20", "2014", "3.5", "1,000", "10-20", "4.0", "99%", "$5"]
CLITICS = ["don't", "it's", "we're", "I've", "they'll", "she'd", "I'm", "can't", "John's", "DOESN'T"]
NON_ASCII = ["café", "Über", "naïve", "Ωmega", "Москва", "\u212Aelvin", "\u0130stanbul", "straße", "ÉCOLE", "日本"]
ODD = ["state-of-the-art", "e-mail", "U.S.", "a,b", "x/y", "&amp;", "&quot;hi&quot;", "--", "...", "(sic)"]
PUNCT_AFTER = [",", ".", "!", "?", ";", ":", "...", ")", "\"", "'"]
PUNCT_BEFORE = ["(", "\"", "'", "["]


def random_word(rng):
    r = rng.random()
    if r < 0.35:
        word = rng.choice(FUNCTION)
    elif r < 0.75:
        word = rng.choice(rng.choice(FAMILIES))
    elif r < 0.82:
        word = rng.choice(NUMBERS)
    elif r < 0.88:
        word = rng.choice(CLITICS)
    elif r < 0.94:
        word = rng.choice(NON_ASCII)
    else:
        word = rng.choice(ODD)
    c = rng.random()
    if c < 0.1:
        word = word.capitalize()
    elif c < 0.13:
        word = word.upper()
    if rng.random() < 0.15:
        word += rng.choice(PUNCT_AFTER)
    if rng.random() < 0.04:
        word = rng.choice(PUNCT_BEFORE) + word
    return word


def join_words(words, rng):
    """Words joined by spaces, with the odd newline (ROUGE-Lsum's sentence break), blank line or tab."""
    out = ""
    for i, w in enumerate(words):
        if i:
            r = rng.random()
            out += "\n" if r < 0.1 else "\n\n" if r < 0.12 else "\t" if r < 0.14 else "  " if r < 0.16 else " "
        out += w
    if rng.random() < 0.1:
        out += "\n"
    return out


def related(word, rng):
    """A stem-mate or synonym of `word` where it has a family, else the word."""
    bare = word.strip(".,!?;:)\"'([").lower()
    for family in FAMILIES:
        if bare in family:
            return rng.choice(family)
    return word


def edit(words, rng):
    """A prediction made from reference words: drops, substitutions by family members, insertions,
    case changes and a moved span."""
    out = []
    for w in words:
        r = rng.random()
        if r < 0.12:
            continue
        if r < 0.35:
            out.append(related(w, rng))
        elif r < 0.42:
            out.append(random_word(rng))
        elif r < 0.45:
            out.append(w.upper())
        else:
            out.append(w)
        if rng.random() < 0.06:
            out.append(random_word(rng))
    if len(out) > 3 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 2)
        j = rng.randrange(i + 1, len(out))
        out = out[:i] + out[j:] + out[i:j]
    return out


def generated_pairs(count):
    rng = random.Random(20261205)
    pairs = [
        ("the cat sat on the mat", "the cat sat on the mat"),
        ("the cat sat on the mat", ""),
        ("The quick brown fox.\nIt jumps over the lazy dog.", "the lazy dog\nthe quick fox jumps"),
        ("a b c\nd e f\na b", "a b\nc d e f a"),
        ("Running studies, connections!", "run study connect"),
        ("one", "one one one one"),
        ("... -- !!", "... -- !!"),
        ("I don't know what it's about", "i do not know what it is about"),
        ("\u212Aelvin \u0130stanbul café", "kelvin istanbul cafe"),
        ("Price: $5 (about 4.0 euros), 1,000 times.", "the price was 5 dollars, 1000 times"),
    ]
    while len(pairs) < count:
        ref_words = [random_word(rng) for _ in range(rng.randint(1, 40))]
        r = rng.random()
        if r < 0.05:
            pred_words = []
        elif r < 0.15:
            pred_words = [random_word(rng) for _ in range(rng.randint(1, 30))]
        elif r < 0.2:
            pred_words = list(ref_words)
        else:
            pred_words = edit(ref_words, rng)
        pairs.append((join_words(ref_words, rng), join_words(pred_words, rng)))
    return pairs


def demo_pairs():
    """The demo test set's outputs as references; predictions are seeded edits of them (there is no
    committed predictions file), split into lines at sentence ends now and then for ROUGE-Lsum."""
    rng = random.Random(7)
    pairs = []
    for record in read_jsonl(ROOT / "data" / "demo" / "test.jsonl"):
        reference = record["output"]
        if rng.random() < 0.3:
            reference = reference.replace(". ", ".\n")
        pred = edit(reference.split(), rng)
        pairs.append((record["id"], reference, join_words(pred, rng)))
    return pairs


# ---- running both sides ----------------------------------------------------------------------

def run_eval(folder, name, examples, stem):
    """examples: [(id, reference, prediction)]; returns percetrain's --out report."""
    refs, preds, out = folder / f"{name}.refs.jsonl", folder / f"{name}.preds.jsonl", folder / f"{name}.metrics.json"
    with open(refs, "w", encoding="utf-8") as f:
        for i, reference, _ in examples:
            f.write(json.dumps({"id": i, "output": reference}, ensure_ascii=False) + "\n")
    with open(preds, "w", encoding="utf-8") as f:
        for i, _, prediction in examples:
            f.write(json.dumps({"id": i, "prediction": prediction}, ensure_ascii=False) + "\n")
    args = ["eval", "--predictions", preds, "--references", refs, "--out", out, "--wordnet", eval_util.WORDNET_DIR]
    percetrain(*args, *(["--stem"] if stem else []))
    return json.loads(out.read_text(encoding="utf-8"))


def reference_scores(examples, stem, wordnet):
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=stem)
    rows = []
    for _, reference, prediction in examples:
        scores = scorer.score(reference, prediction)  # (target, prediction)
        row = {t: scores[t].fmeasure for t in ROUGE_TYPES}
        row["meteor"] = meteor_score([eval_util.meteor_tokens(reference)], eval_util.meteor_tokens(prediction),
                                     wordnet=wordnet)
        rows.append(row)
    return rows


class _NoSynonyms:
    """A WordNet without synsets and a stemmer that keeps words: METEOR without its later stages."""

    def synsets(self, word):
        return []

    def stem(self, word):
        return word


def meteor_stage_counts(examples, wordnet):
    """How many pairs score differently without the synonym stage, and without both later stages."""
    none = _NoSynonyms()
    synonyms = stems = 0
    for _, reference, prediction in examples:
        ref, hyp = eval_util.meteor_tokens(reference), eval_util.meteor_tokens(prediction)
        full = meteor_score([ref], hyp, wordnet=wordnet)
        synonyms += full != meteor_score([ref], hyp, wordnet=none)
        stems += full != meteor_score([ref], hyp, wordnet=none, stemmer=none)
    return synonyms, stems


def check_bleu(checks, name, examples, report):
    hyps = [p for _, _, p in examples]
    refs = [[r for _, r, _ in examples]]
    want = sacrebleu.corpus_bleu(hyps, refs)  # BLEU(): 13a, exp smoothing, mixed case
    got = report["metrics"]["bleu"]
    detail = report["bleu_detail"]
    checks.close(f"{name}: corpus BLEU = sacrebleu {sacrebleu.__version__} ({want.score:.4f})", got, want.score,
                 atol=1e-9)
    checks.equal(f"{name}: BLEU statistics (matches, n-grams, lengths)",
                 (detail["correct"], detail["total"], detail["sys_len"], detail["ref_len"]),
                 (list(want.counts), list(want.totals), want.sys_len, want.ref_len))


def check_goldens(checks, wordnet):
    """The METEOR / Porter / WordNet goldens the C++ tests (Meteor*, Porter*, WordNet*) read were
    written by NLTK 3.8; the same script run with today's NLTK must give the same bytes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_meteor_goldens", ROOT / "scripts" / "make_meteor_goldens.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name, text in script.golden_files(wordnet).items():
        committed = (ROOT / "tests" / "golden" / "eval" / name).read_text(encoding="utf-8").splitlines()
        fresh = text.splitlines()
        differ = sum(a != b for a, b in zip(committed, fresh)) + abs(len(committed) - len(fresh))
        checks.true(f"tests/golden/eval/{name} = NLTK {nltk.__version__} (scripts/make_meteor_goldens.py)",
                    differ == 0, f"{differ} of {len(committed)} lines differ")


def nltk_word_tokens(text):
    """What Hugging Face evaluate's meteor feeds NLTK: word_tokenize, i.e. Treebank words within
    Punkt sentences. NLTK's trained English Punkt model is data (punkt_tab) that cannot be fetched
    here, so sentences come from an untrained PunktSentenceTokenizer, which differs from the
    trained one around abbreviations only."""
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    words = NLTKWordTokenizer()
    return [t for sentence in PunktSentenceTokenizer().tokenize(text) for t in words.tokenize(sentence)]


def check_tokenizer(checks, wordnet, generated):
    """percetrain's METEOR tokens against NLTK's own tokenizer: equal on the demo set's outputs
    (plain review text); on the generated pairs, which hold the constructs docs/evaluation.md lists
    as known differences (double quotes, punctuation inside a word, abbreviations), the METEOR
    difference is measured and bounded."""
    outputs = [r["output"] for split in ("train", "valid", "test") for r in read_jsonl(ROOT / "data" / "demo" / f"{split}.jsonl")]
    same = sum(eval_util.meteor_tokens(t) == nltk_word_tokens(t) for t in outputs)
    checks.true("demo outputs: percetrain's METEOR tokens = NLTK word tokenizer's", same == len(outputs),
                f"{same} of {len(outputs)} texts tokenised identically")
    ours, theirs = [], []
    for _, reference, prediction in generated:
        ours.append(meteor_score([eval_util.meteor_tokens(reference)], eval_util.meteor_tokens(prediction), wordnet=wordnet))
        theirs.append(meteor_score([nltk_word_tokens(reference)], nltk_word_tokens(prediction), wordnet=wordnet))
    checks.close("generated: METEOR with percetrain's tokens vs NLTK's word tokenizer (documented difference)",
                 ours, theirs, atol=0.3)
    checks.close("generated: mean METEOR, percetrain's tokens vs NLTK's word tokenizer (documented difference)",
                 sum(ours) / len(ours), sum(theirs) / len(theirs), atol=0.02)


def main():
    checks = Checks("Reference.metrics")
    demo = demo_pairs()
    generated = [(f"g{k:03d}", r, p) for k, (r, p) in enumerate(generated_pairs(300))]
    print(f"nltk {nltk.__version__}, sacrebleu {sacrebleu.__version__}, rouge-score 0.1.2 (rouge_scorer); "
          f"{len(demo)} demo pairs + {len(generated)} generated", flush=True)
    with Workdir("metrics") as folder:
        wordnet = eval_util.open_wordnet(eval_util.build_nltk_data(folder / "nltk_data"))
        check_goldens(checks, wordnet)
        check_tokenizer(checks, wordnet, generated)
        for set_name, examples in [("demo", demo), ("generated", generated)]:
            for stem in (False, True):
                name = f"{set_name}{' --stem' if stem else ''}"
                report = run_eval(folder, set_name + ("_stem" if stem else ""), examples, stem)
                want = reference_scores(examples, stem, wordnet)
                got = report["examples"]
                checks.equal(f"{name}: example ids in order", [e["id"] for e in got], [e[0] for e in examples])
                for metric in METRICS:
                    if metric == "meteor" and stem:
                        continue  # --stem is ROUGE's; METEOR is checked once per set
                    library = f"NLTK {nltk.__version__} meteor_score" if metric == "meteor" else \
                        f"rouge-score {metric}{' use_stemmer' if stem else ''}"
                    checks.close(f"{name}: {metric} per example = {library}", [e[metric] for e in got],
                                 [w[metric] for w in want], atol=1e-12)
                    mean = sum(w[metric] for w in want) / len(want)
                    checks.close(f"{name}: {metric} mean", report["metrics"][metric], mean, atol=1e-12)
                if not stem:
                    check_bleu(checks, name, examples, report)
                    unstemmed = want
                elif set_name == "generated":
                    # The inputs must reach what is being compared: stemming, line splits, empty sides.
                    stems = sum(a["rouge1"] != b["rouge1"] for a, b in zip(want, unstemmed))
                    lines = sum(w["rougeLsum"] != w["rougeL"] for w in unstemmed)
                    empty = sum(not p.strip() for _, _, p in examples)
                    synonyms, later = meteor_stage_counts(examples, wordnet)
                    checks.true("generated: inputs exercise stemming, ROUGE-Lsum's lines, empty predictions "
                                "and METEOR's stem and synonym stages",
                                stems >= 20 and lines >= 20 and empty >= 3 and synonyms >= 20 and later >= 40,
                                f"{stems} pairs change ROUGE-1 with the stemmer, {lines} have ROUGE-Lsum != ROUGE-L, "
                                f"{empty} empty predictions; METEOR changes in {synonyms} pairs without WordNet, "
                                f"in {later} without stems and WordNet")
        # Corpus BLEU on small slices: short corpora reach sacrebleu's edge cases (no 4-grams at
        # all, an order without matches, an empty hypothesis, an empty reference, which sacrebleu
        # 2.6 scores as a reference without tokens).
        slices = [generated[1:2], generated[5:6], generated[3:5], generated[6:8], demo[:1], generated[10:14],
                  [(i, r, " ".join(p.split()[:2])) for i, r, p in generated[20:26]],
                  [("e0", "", "words without a reference"), ("e1", "a b c d e", "a b c d e")]]
        for k, examples in enumerate(slices):
            report = run_eval(folder, f"slice{k}", examples, False)
            check_bleu(checks, f"slice {k} ({len(examples)} pairs)", examples, report)
    checks.finish()


if __name__ == "__main__":
    main()
