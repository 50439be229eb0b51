#!/usr/bin/env python3
"""Writes the METEOR / Porter / WordNet goldens the C++ eval tests compare against.

Reference: NLTK's nltk.translate.meteor_score and PorterStemmer (the pinned NLTK 3.10.4 of the
project's .venv; NLTK 3.8, which wrote them first, gives the same bytes) on Debian's WordNet 3.0
(wordnet-base). Run from the repository root with the project's environment:

    bash scripts/setup.sh --venv && .venv/bin/python scripts/make_meteor_goldens.py [--check]

--check compares with the committed files instead of writing them (Reference.metrics does the same
through golden_files()). NLTK's servers are not used: the nltk_data folder (under .cache/,
git-ignored) is made from Debian's files by tests/reference/eval_util.py.
"""
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import eval_util  # noqa: E402

WORDNET_DIR = str(eval_util.WORDNET_DIR)
OUT_DIR = os.path.join(ROOT, "tests", "golden", "eval")
NLTK_DATA = os.path.join(ROOT, ".cache", "nltk_data")
NLTK_VERSION = "3.10.4"

# ---------------------------------------------------------------------------------------------
# Hand-written pairs (reference, hypothesis), whitespace-tokenized. They cover: identity, case,
# empty sides, punctuation tokens, repeated words, exact vs stem vs synonym matches, irregular
# forms (morphy exceptions), lemma names with underscores (ignored by meteor), fragmentation.
HAND_PAIRS = [
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the cat sat on the mat", "The Cat SAT on THE mat"),
    ("the cat sat on the mat", "on the mat sat the cat"),
    ("the cat sat on the mat", ""),
    ("", "the cat sat on the mat"),
    ("", ""),
    (". , ! ?", ". , ! ?"),
    (". , ! ?", "? ! , ."),
    ("hello , world !", "hello world"),
    ("the the the the", "the"),
    ("the", "the the the the"),
    ("a a b b a a", "a b a b a b"),
    ("It is a guide to action that ensures that the military will forever heed Party commands",
     "It is a guide to action which ensures that the military always obeys the commands of the party"),
    ("It is the guiding principle which guarantees the military forces always being under the command of the Party",
     "It is to insure the troops forever hearing the activity guidebook that party direct"),
    ("this is a cat", "non matching hypothesis"),
    ("the dogs were running quickly", "a dog ran fast"),
    ("the children played happily in the gardens", "kids were playing in a garden"),
    ("geese flew over the houses", "a goose flies over the house"),
    ("mice ate the cheese", "the mouse eats cheese"),
    ("she bought a new car", "she purchased a new automobile"),
    ("he is a big man", "he is a large man"),
    ("the film was good", "the movie was great"),
    ("the film was good", "the movie was good"),
    ("i love this product", "i adore this merchandise"),
    ("the results were astonishing", "the outcomes were amazing"),
    ("we propose a novel method", "we suggest a new approach"),
    ("the study examines user behaviour", "this research investigates the behavior of users"),
    ("the generalization of the approach", "generalizations of approaches"),
    ("relational databases are conditional", "relate database conditions"),
    ("happiness and sadness", "happy and sad"),
    ("skies dying lying tying news innings", "sky die lie tie news inning"),
    ("proceed exceed succeed", "proceeding exceeded succeeds"),
    ("hot dog stand", "frankfurter stand"),
    ("the United States of America", "the US of America"),
    ("caresses ponies ties caress cats", "caress pony tie caresses cat"),
    ("feed agreed plastered bled motoring sing", "fed agree plaster bleed motor sang"),
    ("conflated troubled sized hopping tanned falling hissing fizzed failing filing",
     "conflate trouble size hop tan fall hiss fizz fail file"),
    ("happy sky enjoy spy fly try", "happiness skies enjoyment spied flies tried"),
    ("triplicate formative formalize electriciti electrical hopeful goodness",
     "triplic form formal electric electric hope good"),
    ("revival allowance inference airliner gyroscopic adjustable defensible irritant replacement adjustment dependent adoption",
     "reviv allow infer airlin gyroscop adjust defens irrit replac adjust depend adopt"),
    ("probate rate cease controll roll", "probat rate ceas control roll"),
    ("a b c d e f g h", "h g f e d c b a"),
    ("a b c d e f g h", "a b c d x e f g h"),
    ("one two three four five", "one three five two four"),
    ("1 2 3 4 5", "1 2 3 4 5 6 7"),
    ("price is $ 20 .", "the price was 20 dollars"),
    ("the café was très bien", "the cafe was tres bien"),
    ("Ünïcödé words here", "ünïcödé Words here"),
    ("don 't stop believing", "do not stop believing"),
    ("it 's a beautiful day", "it is a lovely day"),
    ("the quick brown fox jumps over the lazy dog", "the fast brown fox leaps over the idle dog"),
    ("the quick brown fox jumps over the lazy dog", "a quick brown dog jumps on the log"),
    ("this paper presents a framework for personalized text generation",
     "we present a personalised framework for generating text"),
    ("great product , works as described and arrived quickly",
     "excellent item ; functions as advertised and came fast"),
    ("terrible quality , broke after two days", "awful quality , it broke in 2 days"),
    ("i would recommend this book to anyone", "i'd recommend the book to everybody"),
    ("the author argues that language models memorize data",
     "the writer claims language models remember the data"),
    ("running runner runs ran", "run run run run"),
    ("better best good well", "good good good good"),
    ("worse worst bad badly", "bad bad bad bad"),
    ("the abbey's bells rang", "the abbey bell rings"),
    ("x", "x"),
    ("x", "y"),
    ("ab", "ab"),
    ("ab ac ad", "ac ad ab"),
    ("-- ... ''", "-- ... ''"),
    ("state-of-the-art results", "state of the art results"),
    ("e-mail me at noon", "email me at midday"),
    ("the attorney argued the case", "the lawyer argued the lawsuit"),
    ("buy sell trade", "purchase deal swap"),
    ("begin start commence", "start begin initiate"),
    ("the weather is cold and wet", "the weather is chilly and rainy"),
    ("scientists discovered new species", "researchers found novel species"),
    ("the government announced new policies", "the administration declared new policy"),
    ("students studied hard for exams", "the student studies hard for the examination"),
]

# Template pairs: hand-written base sentences, each varied by word-level edits drawn from
# hand-written substitution tables (synonyms, inflections, unrelated words) with a fixed seed.
BASE_SENTENCES = [
    "the hotel room was clean and the staff were friendly",
    "this blender is powerful but very loud in the morning",
    "we study how large language models adapt to individual users",
    "the battery lasts all day and charges quickly",
    "our experiments show consistent gains across three tasks",
    "the plot was predictable but the actors were excellent",
    "she wrote a short story about her childhood in the village",
    "the proposed algorithm reduces memory usage by half",
    "customers complained that the delivery arrived late",
    "the museum houses paintings from the eighteenth century",
    "my dog loves running in the park every evening",
    "the recipe needs two cups of flour and one egg",
    "the committee approved the budget after a long debate",
    "the shoes fit well and look stylish",
    "this method learns personal preferences from past reviews",
    "heavy rain caused flooding in several towns",
    "the teacher explained the problem clearly to the students",
    "the camera takes sharp pictures even in low light",
    "investors worried about rising interest rates",
    "the novel explores themes of loss and memory",
    "the software update fixed many annoying bugs",
    "researchers measured the temperature of the ocean",
    "the coffee tastes bitter but smells wonderful",
    "the children built a castle out of sand",
    "we evaluate the model on abstract generation and review writing",
]
SUBSTITUTIONS = {
    "clean": ["tidy", "spotless", "cleaned", "dirty"], "friendly": ["kind", "helpful", "rude"],
    "staff": ["employees", "personnel", "workers"], "room": ["rooms", "chamber", "suite"],
    "powerful": ["strong", "potent", "weak"], "loud": ["noisy", "louder", "quiet"],
    "study": ["studied", "examine", "investigate", "studies"], "large": ["big", "huge", "larger"],
    "adapt": ["adjust", "adapted", "adapting"], "users": ["user", "people", "customers"],
    "lasts": ["last", "lasted", "endures"], "quickly": ["fast", "rapidly", "slowly"],
    "experiments": ["experiment", "tests", "trials"], "gains": ["improvements", "gain", "increases"],
    "show": ["shows", "demonstrate", "showed"], "tasks": ["task", "jobs", "problems"],
    "predictable": ["foreseeable", "obvious"], "actors": ["actor", "performers", "cast"],
    "excellent": ["great", "superb", "terrible"], "wrote": ["write", "writes", "penned", "composed"],
    "story": ["stories", "tale", "narrative"], "childhood": ["youth", "childhoods"],
    "village": ["villages", "town", "hamlet"], "proposed": ["propose", "suggested", "planned"],
    "reduces": ["reduce", "cuts", "lowers", "decreases"], "usage": ["use", "usages", "consumption"],
    "half": ["halves", "one-half"], "customers": ["customer", "clients", "buyers"],
    "complained": ["complain", "complaining", "protested"], "delivery": ["deliveries", "shipment"],
    "arrived": ["arrive", "came", "arriving"], "late": ["later", "tardy", "early"],
    "houses": ["house", "holds", "contains"], "paintings": ["painting", "pictures", "artworks"],
    "century": ["centuries", "hundred_years"], "loves": ["love", "enjoys", "adores"],
    "running": ["run", "runs", "jogging"], "evening": ["evenings", "night", "eve"],
    "needs": ["need", "requires", "needed"], "cups": ["cup", "mugs"], "egg": ["eggs", "ova"],
    "approved": ["approve", "sanctioned", "rejected"], "budget": ["budgets", "funds"],
    "debate": ["debates", "argument", "discussion"], "fit": ["fits", "suit", "fitted"],
    "look": ["looks", "appear", "seem"], "stylish": ["fashionable", "chic", "ugly"],
    "learns": ["learn", "learned", "acquires"], "preferences": ["preference", "tastes", "likes"],
    "reviews": ["review", "critiques", "reviewing"], "heavy": ["heavier", "intense"],
    "rain": ["rains", "rainfall", "downpour"], "caused": ["cause", "produced", "triggered"],
    "towns": ["town", "cities", "villages"], "teacher": ["teachers", "instructor"],
    "explained": ["explain", "clarified", "described"], "clearly": ["clear", "plainly"],
    "camera": ["cameras", "photographic_camera"], "sharp": ["crisp", "sharper", "blurry"],
    "pictures": ["picture", "photos", "images"], "worried": ["worry", "worries", "fretted"],
    "rising": ["rise", "increasing", "falling"], "rates": ["rate", "charges"],
    "novel": ["novels", "book", "new"], "explores": ["explore", "examines", "investigates"],
    "themes": ["theme", "topics", "subjects"], "memory": ["memories", "remembrance"],
    "fixed": ["fix", "repaired", "mended"], "annoying": ["irritating", "bothersome", "annoy"],
    "bugs": ["bug", "glitches", "errors"], "measured": ["measure", "gauged", "quantified"],
    "ocean": ["oceans", "sea", "seas"], "tastes": ["taste", "savors"], "bitter": ["acrid", "sweet"],
    "smells": ["smell", "scents"], "wonderful": ["marvelous", "fantastic", "awful"],
    "built": ["build", "constructed", "made"], "castle": ["castles", "fortress", "palace"],
    "evaluate": ["evaluates", "assess", "measure"], "model": ["models", "framework"],
    "generation": ["generating", "production", "creation"], "writing": ["write", "composition"],
}
FILLER = ["indeed", "really", "also", "very", "perhaps", "the", "a", "of", "and", "!", ",", "."]


def vary(sentence, rng):
    words = sentence.split()
    out = []
    for w in words:
        r = rng.random()
        if w in SUBSTITUTIONS and r < 0.45:
            out.append(rng.choice(SUBSTITUTIONS[w]))
        elif r < 0.52:
            continue  # drop
        else:
            out.append(w.upper() if r > 0.97 else w)
        if rng.random() < 0.06:
            out.append(rng.choice(FILLER))
    if rng.random() < 0.25 and len(out) > 3:  # swap a span to create fragmentation
        i = rng.randrange(len(out) - 2)
        j = rng.randrange(i + 1, len(out))
        out = out[:i] + out[j:] + out[i:j]
    return " ".join(out)


def make_pairs():
    rng = random.Random(20260507)
    pairs = list(HAND_PAIRS)
    for base in BASE_SENTENCES:
        for _ in range(6):
            reference = base if rng.random() < 0.6 else vary(base, rng)
            pairs.append((reference, vary(base, rng)))
    # Cross pairs: unrelated sentences (few matches, many chunks).
    for k in range(10):
        pairs.append((BASE_SENTENCES[k], BASE_SENTENCES[(k * 7 + 3) % len(BASE_SENTENCES)]))
    return pairs


def golden_files(wordnet):
    """{file name: text} of every golden, from NLTK's functions with `wordnet` as the WordNet."""
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import meteor_score, single_meteor_score

    stemmer = PorterStemmer()
    pairs = make_pairs()
    files = {}
    lines = []
    for reference, hypothesis in pairs:
        ref, hyp = reference.split(), hypothesis.split()
        score = single_meteor_score(ref, hyp, wordnet=wordnet)
        assert score == meteor_score([ref], hyp, wordnet=wordnet)
        lines.append(json.dumps({"reference": ref, "hypothesis": hyp, "meteor": repr(score)}, ensure_ascii=False))
    files["meteor_pairs.jsonl"] = "".join(line + "\n" for line in lines)
    # Multi-reference: meteor_score takes the best single score.
    lines = []
    for k in range(0, len(pairs) - 2, 9):
        refs = [pairs[k][0].split(), pairs[k + 1][0].split(), pairs[k + 2][0].split()]
        hyp = pairs[k][1].split()
        lines.append(json.dumps({"references": refs, "hypothesis": hyp,
                                 "meteor": repr(meteor_score(refs, hyp, wordnet=wordnet))}, ensure_ascii=False))
    files["meteor_multi.jsonl"] = "".join(line + "\n" for line in lines)

    # Porter: every word of the pairs, the paper's examples, NLTK's special cases, and a sample
    # of WordNet's vocabulary (every 23rd single-word lemma of each index file).
    words = set()
    for reference, hypothesis in pairs:
        words.update(w.lower() for w in (reference + " " + hypothesis).split())
    words.update("""a i is as us sky skies dying lying tying news innings inning outings outing
        cannings canning howe proceed exceed succeed ies pies dies ied tied cried spied fly flies
        happy enjoy enjoyment generalization generalizations oscillators hopeful electricity
        analogousli vileli differentli radicalli conformabli archaeology analogy theology
        biology geology sensibility formality sensitivity triplicate formalize controlling
        rolling falling hissing fizzing agreed feed bleed disagreeing conflated troubled sized
        hopping filing failing tanned abbey aalii ooze eed seed speed breed bowdlerize effective
        communism activate angularity homologous adoption dependent adjustment replacement
        irritant defensible adjustable gyroscopic airliner inference allowance revival
        probate rate cease controll roll skying dyed yelled yodeling""".split())
    for suffix in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(WORDNET_DIR, "index." + suffix)) as f:
            lemmas = [line.split()[0] for line in f if not line.startswith(" ")]
        words.update(w for w in lemmas[::23] if "_" not in w)
    files["porter_words.tsv"] = "".join("%s\t%s\n" % (w, stemmer.stem(w)) for w in sorted(words))

    # WordNet: the synonym set meteor builds for a word (lemma names without "_", plus the word).
    probe = set()
    for reference, hypothesis in pairs[:80]:
        for w in hypothesis.split():
            probe.add(w.lower())
            probe.add(stemmer.stem(w.lower()))
    probe.update(["geese", "mice", "ran", "better", "best", "worse", "ponies", "boxes", "churches",
                  "men", "women", "fishes", "glasses", "abaci", "corpora", "hotdog", "xyzzy", ""])
    lines = []
    for w in sorted(probe):
        names = [l.name() for s in wordnet.synsets(w) for l in s.lemmas()]
        lines.append(json.dumps({"word": w, "lemma_names": names}, ensure_ascii=False))
    files["wordnet_synonyms.jsonl"] = "".join(line + "\n" for line in lines)
    return files


def main():
    import nltk

    assert nltk.__version__ == NLTK_VERSION, f"want the pinned NLTK {NLTK_VERSION}, got {nltk.__version__}"
    check = sys.argv[1:] == ["--check"]
    wordnet = eval_util.open_wordnet(eval_util.build_nltk_data(NLTK_DATA))
    files = golden_files(wordnet)
    if check:
        differ = []
        for name, text in files.items():
            with open(os.path.join(OUT_DIR, name), encoding="utf-8") as f:
                if f.read() != text:
                    differ.append(name)
        print("goldens differ: " + ", ".join(differ) if differ else "goldens unchanged: " + ", ".join(files))
        return 1 if differ else 0
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(OUT_DIR, name), "w", encoding="utf-8") as f:
            f.write(text)
    print("wrote %s to %s" % (", ".join(files), OUT_DIR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
