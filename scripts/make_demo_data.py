#!/usr/bin/python3
"""Writes data/demo/{train,valid,test}.jsonl: a small synthetic personalisation set in LongLaMP's
product-review shape, with the personal words of every output marked by construction.

Stdlib only, fixed seed; the committed files are exactly what this script writes
(`/usr/bin/python3 scripts/make_demo_data.py --check` verifies that).

Each user has a signature sign-off, a favourite product and two style words of their own, and
their own phrasing around them; they appear in most of the user's profile items and in every gold
output, surrounded by review text that all users share. `personal_spans` lists [start, end)
offsets of those words in `output`; the text is ASCII, so byte and code-point offsets coincide.

The split is by time, like LaMP's time-based setting: every user's reviews are in order, the
profile of a review is a sample of the user's earlier ones, and train, valid and test hold each
user's earlier, second-to-last and last gold review. Without the profile a prompt says nothing
about who wrote it (product, rating and summary are drawn independently of the user), so the
profile is the only way to know a user's words. A fifth of the training records come without
their profile: besides new users being realistic, they are where a model trained from scratch
learns the prompt without a profile that PerContrast's second pass feeds it.
"""
import argparse
import json
import os
import random
import sys

SEED = 20260406
USERS = 32
GOLDS = {"train": 8, "valid": 1, "test": 1}  # each user's gold reviews per split, in time order
HISTORY = 6                # reviews before the first gold one, so that every profile has enough
PROFILE_ITEMS = (4, 6)     # items per record's profile (a sample of the user's earlier reviews)
SIGNATURE_IN_PROFILE = 0.85
FAVOURITE_IN_PROFILE = 0.7
WITHOUT_PROFILE = 0.2      # share of training records whose profile is withheld

SIGNATURES = [
    "Happy tinkering, folks.", "Stay cozy out there.", "Verdict: chef's kiss.", "Onward and upward!",
    "Keep calm and brew on.", "Peace out, shoppers.", "That is my two cents.", "Catch you at the checkout.",
    "Live long and cook well.", "Over and out.", "Buy once, cry once.", "Cheers from the porch!",
    "Rock on, bargain hunters.", "Till next time, neighbors.", "Happy trails, everyone.", "Carry on, good people.",
    "Signed, a picky buyer.", "Stay thrifty, friends.", "Tally ho!", "Roger that, reviewers.",
    "Make it count.", "Sweet dreams and clean sheets.", "So says the garage gnome.", "Bottoms up, team.",
    "Ride safe, pals.", "Mischief managed.", "Ciao for now.", "Game on, gadget fans.",
    "Keep the coffee hot.", "Trust the process.", "Long live the toolbox.", "Snug as a bug.",
]
BRANDS = [
    "Brixton", "Moravia", "Quillfeather", "Halvorsen", "Tessaly", "Corvane", "Pembrook", "Adderly",
    "Wexmoor", "Galloway", "Ostrava", "Kestrel", "Lindqvist", "Marrowby", "Fennick", "Solvay",
    "Thistledown", "Rowanby", "Delacroix", "Vantor", "Ashdown", "Merriweather", "Calloway", "Juniper",
    "Bellhaven", "Norrland", "Piketon", "Everly", "Grisham", "Hollis", "Ambrose", "Tamsin",
]
STYLE_WORDS = [
    "splendid", "nifty", "sturdy", "dandy", "groovy", "stellar", "peachy", "snazzy",
    "swanky", "zesty", "plucky", "spiffy", "jaunty", "brawny", "sleek", "chunky",
    "dainty", "rugged", "crisp", "nimble", "hefty", "snappy", "mellow", "lush",
    "tidy", "bold", "quirky", "breezy", "gritty", "plush", "zippy", "stout",
    "rustic", "dapper", "frisky", "cheeky", "hearty", "lofty", "perky", "toasty",
    "velvety", "burly", "svelte", "glossy", "trusty", "wholesome", "feisty", "posh",
    "clunky", "lean", "spry", "jolly", "solid", "smooth", "natty", "robust",
    "crafty", "comfy", "dreamy", "frugal", "handy", "homely", "lively", "sunny",
]
PRODUCTS = [
    ("kettle", "Electric kettle, 1.7 liters, stainless steel, auto shut-off and boil-dry protection."),
    ("blender", "Countertop blender with 6 speeds, 1.5 liter glass jar and pulse function."),
    ("toaster", "Two-slice toaster with wide slots, 7 browning levels and a removable crumb tray."),
    ("coffee grinder", "Burr coffee grinder with 18 grind settings and a 250 gram bean hopper."),
    ("desk lamp", "LED desk lamp with adjustable arm, 5 color temperatures and a USB charging port."),
    ("backpack", "Water-resistant laptop backpack, 30 liters, padded straps and a hidden pocket."),
    ("cast iron skillet", "Pre-seasoned cast iron skillet, 12 inch, oven safe, with a helper handle."),
    ("cordless drill", "Cordless drill driver, 20V, two batteries, 24 clutch settings and a carry case."),
    ("yoga mat", "Non-slip yoga mat, 6 mm thick, with a carrying strap."),
    ("rice cooker", "Rice cooker, 10 cups, with keep-warm mode and a steaming basket."),
    ("headphones", "Over-ear wireless headphones with noise cancelling and 30 hour battery life."),
    ("water bottle", "Insulated water bottle, 32 ounces, keeps drinks cold for 24 hours."),
    ("air fryer", "Air fryer, 5 quarts, digital controls and a dishwasher-safe basket."),
    ("office chair", "Ergonomic office chair with lumbar support, mesh back and adjustable armrests."),
    ("flashlight", "Rechargeable LED flashlight, 1000 lumens, waterproof, with 5 modes."),
    ("bath towel set", "Set of 4 cotton bath towels, quick-dry and soft."),
    ("tent", "Two-person camping tent with rainfly, easy setup and a mesh roof."),
    ("french press", "French press coffee maker, 34 ounces, borosilicate glass and steel filter."),
    ("bluetooth speaker", "Portable bluetooth speaker, waterproof, 12 hour playtime."),
    ("chef knife", "Chef knife, 8 inch, high-carbon stainless steel with an ergonomic handle."),
]
SUMMARIES = {
    5: ["Love it", "Works great", "Exactly what I needed", "Five stars", "Excellent purchase"],
    4: ["Very good", "Solid buy", "Happy with it", "Good value", "Does the job well"],
    3: ["It is okay", "Decent but not great", "Middle of the road", "Fine for the price"],
    2: ["Not impressed", "Disappointing", "Could be better", "Expected more"],
    1: ["Broke quickly", "Waste of money", "Do not buy", "Very poor"],
}
OPENERS = [
    "I bought the {p} last month.", "Picked up the {p} for my kitchen.", "I have used the {p} for a few weeks now.",
    "Got the {p} as a gift.", "I ordered the {p} after reading the reviews.", "The {p} arrived on time.",
]
BODY = {
    "good": ["It works exactly as described.", "Setup took only a few minutes.", "The price was fair for what you get.",
             "It feels well made and easy to clean.", "I use it every day without problems."],
    "mid": ["It works, but the instructions are vague.", "Some parts feel a little cheap.",
            "It does the basic job and nothing more.", "The price is a bit high for what you get."],
    "bad": ["It stopped working after two weeks.", "The parts feel flimsy and cheap.",
            "Customer service never answered my email.", "It does not work as described."],
}
STYLE_SENTENCES = [
    "The build is {a} and the finish feels {b}.", "Honestly, it looks {a} and handles {b}.",
    "The design is {a}, and the buttons feel {b}.", "Overall it is {a} and surprisingly {b}.",
]
FAVOURITE_SENTENCES = [
    "Still, nothing beats my {f}.", "It reminds me of my {f}.", "I would compare it to my {f}.",
]


class Text:
    """Builds a text sentence by sentence and records the offsets of the personal parts."""

    def __init__(self):
        self.parts = []
        self.spans = []
        self.length = 0

    def add(self, template, **personal):
        # template has {name} slots whose values are personal words.
        if self.parts:
            self.parts.append(" ")
            self.length += 1
        pos = 0
        while pos < len(template):
            start = template.find("{", pos)
            if start < 0:
                self._plain(template[pos:])
                break
            self._plain(template[pos:start])
            end = template.index("}", start)
            value = personal[template[start + 1:end]]
            self.spans.append([self.length, self.length + len(value)])
            self._plain(value)
            pos = end + 1

    def _plain(self, text):
        self.parts.append(text)
        self.length += len(text)

    def text(self):
        return "".join(self.parts)


def rating_band(r):
    return "good" if r >= 4 else "mid" if r == 3 else "bad"


def make_review(rng, user, product, rating, with_signature, with_favourite):
    name, _ = product
    t = Text()
    t.add(rng.choice(OPENERS).replace("{p}", name))
    t.add(user["style_sentence"], a=user["style"][0], b=user["style"][1])
    for sentence in rng.sample(BODY[rating_band(rating)], 2):
        t.add(sentence)
    if with_favourite:
        t.add(user["favourite_sentence"], f=user["favourite"])
    if with_signature:
        t.add("{s}", s=user["signature"])
    return t


def make_users(rng):
    signatures = rng.sample(SIGNATURES, USERS)
    brands = rng.sample(BRANDS, USERS)
    styles = rng.sample(STYLE_WORDS, 2 * USERS)
    users = []
    for i in range(USERS):
        users.append({
            "id": "u%02d" % i,
            "signature": signatures[i],
            "favourite": "%s %s" % (brands[i], rng.choice(PRODUCTS)[0]),
            "style": styles[2 * i:2 * i + 2],
            # Users keep to their own phrasing: the sentences around the personal words repeat too.
            "style_sentence": rng.choice(STYLE_SENTENCES),
            "favourite_sentence": rng.choice(FAVOURITE_SENTENCES),
        })
    return users


def build(rng):
    users = make_users(rng)
    splits = {"train": [], "valid": [], "test": []}
    order = [split for split, count in GOLDS.items() for _ in range(count)]
    for user in users:
        reviews = []
        for j in range(HISTORY + len(order)):
            product = rng.choice(PRODUCTS)
            rating = rng.choice([5, 5, 4, 4, 3, 2, 1])
            reviews.append((product, rating, rng.choice(SUMMARIES[rating])))
        for g, split in enumerate(order):
            j = HISTORY + g
            product, rating, summary = reviews[j]
            gold = make_review(rng, user, product, rating, True, rng.random() < 0.8)
            picked = sorted(rng.sample(range(j), rng.randint(*PROFILE_ITEMS)))
            if split == "train" and rng.random() < WITHOUT_PROFILE:
                picked = []
            profile = []
            for k in picked:
                p, r, s = reviews[k]
                text = make_review(rng, user, p, r, rng.random() < SIGNATURE_IN_PROFILE,
                                   rng.random() < FAVOURITE_IN_PROFILE).text()
                profile.append({"overall": float(r), "summary": s, "reviewText": text, "description": p[1]})
            record = {
                "id": "%s_r%02d" % (user["id"], j),
                "user": user["id"],
                "input": ("Generate the review text written by a reviewer who has given an overall rating of "
                          "%.1f for a product with description \"%s\". The summary of the review text is \"%s\"."
                          % (float(rating), product[1], summary)),
                "output": gold.text(),
                "profile": profile,
                "personal_spans": gold.spans,
            }
            out = record["output"]
            assert out.isascii()
            for s, e in gold.spans:
                assert 0 <= s < e <= len(out)
            splits[split].append(record)
    return splits


def render(splits):
    return {name: "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records)
            for name, records in splits.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "demo"))
    parser.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = parser.parse_args()
    files = render(build(random.Random(SEED)))
    if args.check:
        bad = [n for n, text in files.items()
               if not os.path.exists(os.path.join(args.out, n + ".jsonl"))
               or open(os.path.join(args.out, n + ".jsonl"), encoding="ascii").read() != text]
        if bad:
            print("differs from the script's output: " + ", ".join(bad), file=sys.stderr)
            return 1
        print("data/demo matches the script byte for byte")
        return 0
    os.makedirs(args.out, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(args.out, name + ".jsonl"), "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        print("wrote %s.jsonl (%d records, %d bytes)" % (name, text.count("\n"), len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
