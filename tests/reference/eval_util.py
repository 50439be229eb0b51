"""Pieces the metric reference tests share: an nltk_data folder that NLTK's WordNet reader accepts,
made from Debian's WordNet 3.0 files (NLTK's downloader needs a network), and METEOR's tokens the
way percetrain's `eval` makes them (NLTK's meteor_score wants tokens; see docs/evaluation.md,
"METEOR tokenisation").
"""
import gzip
import os
import re
import shutil
import string
from pathlib import Path

WORDNET_DIR = Path(os.environ.get("PERCETRAIN_WORDNET", "/usr/share/wordnet"))
LEXNAMES_MAN = Path("/usr/share/man/man5/lexnames.5WN.gz")
WORDNET_FILES = ["data.noun", "data.verb", "data.adj", "data.adv",
                 "index.noun", "index.verb", "index.adj", "index.adv",
                 "noun.exc", "verb.exc", "adj.exc", "adv.exc"]
LEXNAME_COUNT = 45  # WordNet 3.0's lexicographer files 00..44


def missing_wordnet():
    """The first WordNet file that is absent, or None."""
    for name in WORDNET_FILES:
        if not (WORDNET_DIR / name).is_file():
            return WORDNET_DIR / name
    return None


def build_nltk_data(dest):
    """Writes dest/corpora/wordnet/ and returns dest. The files are copied, not linked: NLTK 3.10
    refuses paths that leave the corpus root. Debian's wordnet-base lacks two files the reader
    opens: `lexnames` (made from the lexnames(5WN) man page of the same package where it is
    installed; only the names differ otherwise, and synsets() and lemma names never read them) and
    `index.sense` (read only to map other WordNet versions for the multilingual data; empty here)."""
    target = Path(dest) / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for name in WORDNET_FILES:
        if (target / name).is_symlink():  # an older folder linked Debian's files; never write through it
            (target / name).unlink()
        shutil.copyfile(WORDNET_DIR / name, target / name)
    rows = []
    if LEXNAMES_MAN.is_file():
        with gzip.open(LEXNAMES_MAN, "rt") as f:
            for line in f:
                m = re.match(r"^(\d\d)\t(\S+)\s", line)
                if m:
                    rows.append((int(m.group(1)), m.group(2)))
    if [r[0] for r in rows] != list(range(LEXNAME_COUNT)):
        rows = [(i, f"noun.lexfile{i:02d}") for i in range(LEXNAME_COUNT)]
    category = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
    with open(target / "lexnames", "w") as f:
        for index, name in rows:
            f.write("%02d\t%s\t%d\n" % (index, name, category[name.split(".")[0]]))
    (target / "index.sense").write_text("")
    return Path(dest)


def open_wordnet(nltk_data):
    """NLTK's wordnet corpus reader over build_nltk_data()'s folder (and nothing else)."""
    import nltk

    nltk.data.path[:] = [str(nltk_data)]
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet


_ASCII_SPACE = " \t\n\r\f\v"
_CLITICS = ("'s", "'re", "'ve", "'ll", "'d", "'m")


def meteor_tokens(text):
    """percetrain's meteor_tokenize (src/eval/metrics.cpp), as docs/evaluation.md documents it:
    split at ASCII whitespace; leading and trailing ASCII punctuation become tokens of their own, a run of dots
    or "--" one token; then n't or one of 's 're 've 'll 'd 'm (any case) is split off the word."""
    out = []
    for chunk in re.split("[" + re.escape(_ASCII_SPACE) + "]+", text):
        begin, end = 0, len(chunk)
        leading, trailing = [], []
        while begin < end and chunk[begin] in string.punctuation:
            stop = begin + 1
            if chunk[begin] == ".":
                while stop < end and chunk[stop] == ".":
                    stop += 1
            elif chunk[begin] == "-" and stop < end and chunk[stop] == "-":
                stop += 1
            leading.append(chunk[begin:stop])
            begin = stop
        while end > begin and chunk[end - 1] in string.punctuation:
            start = end - 1
            if chunk[start] == ".":
                while start > begin and chunk[start - 1] == ".":
                    start -= 1
            elif chunk[start] == "-" and start > begin and chunk[start - 1] == "-":
                start -= 1
            trailing.insert(0, chunk[start:end])
            end = start
        out += leading
        word = chunk[begin:end]
        if word:
            low = word.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))
            split = None
            if len(low) > 3 and low.endswith("n't"):
                split = len(low) - 3
            else:
                for clitic in _CLITICS:
                    if len(low) > len(clitic) and low.endswith(clitic):
                        split = len(low) - len(clitic)
                        break
            out += [word] if split is None else [word[:split], word[split:]]
        out += trailing
    return out
