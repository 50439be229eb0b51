#!/usr/bin/python3
"""Writes the text the demo tokenizer is trained on: original, generated English.

Product-review-like prose written by "users" with distinctive habits (the demo dataset is
LongLaMP-style review writing), plus general prose, numbers, dates, prices and punctuation.
Everything comes from the word lists and templates in this file and a fixed seed, so the
project owns the text and the output is the same on every run (stdlib only; Python's
`random.Random` with an integer seed is stable across CPython 3 releases).

Usage: /usr/bin/python3 scripts/make_tokenizer_corpus.py OUT.txt [--lines N] [--seed S]
One sentence group per line; no line is longer than a few hundred bytes, far below
spm_train's max_sentence_length.
"""

import argparse
import random
import re
import sys

# ---------------------------------------------------------------------------------------------
# Word lists.

CATEGORIES = {
    "kitchen": ["blender", "toaster", "kettle", "coffee grinder", "frying pan", "chef's knife",
                "cutting board", "rice cooker", "stand mixer", "food processor", "air fryer",
                "slow cooker", "measuring cups", "spatula set", "water filter pitcher",
                "espresso machine", "cast iron skillet", "salad spinner", "can opener",
                "dish rack", "pressure cooker", "baking sheet", "tea infuser", "mandoline"],
    "electronics": ["headphones", "earbuds", "phone charger", "USB-C cable", "power bank",
                    "bluetooth speaker", "smartwatch", "tablet stand", "wireless mouse",
                    "mechanical keyboard", "webcam", "monitor", "HDMI adapter", "router",
                    "e-reader", "portable SSD", "memory card", "desk lamp", "surge protector",
                    "sound bar", "dash cam", "graphing calculator", "label printer"],
    "books": ["novel", "cookbook", "biography", "field guide", "poetry collection",
              "travel guide", "history book", "mystery novel", "thriller", "short story collection",
              "children's book", "graphic novel", "memoir", "textbook", "fantasy series",
              "science book", "self-help book", "atlas", "essay collection", "puzzle book"],
    "outdoors": ["tent", "sleeping bag", "hiking boots", "rain jacket", "backpack", "headlamp",
                 "water bottle", "camping stove", "trekking poles", "hammock", "cooler",
                 "fishing rod", "binoculars", "compass", "folding chair", "bike helmet",
                 "bike lock", "picnic blanket", "insect repellent", "sun hat"],
    "home": ["vacuum cleaner", "bed sheets", "pillow", "duvet", "shower curtain", "bath towels",
             "curtains", "rug", "storage bins", "laundry basket", "ceiling fan", "humidifier",
             "space heater", "door mat", "picture frame", "wall clock", "candle", "mop",
             "ironing board", "shoe rack", "bookshelf", "office chair", "standing desk"],
    "beauty": ["shampoo", "conditioner", "face cream", "sunscreen", "lip balm", "hair dryer",
               "electric toothbrush", "razor", "nail polish", "body lotion", "hand soap",
               "perfume", "makeup brushes", "hair straightener", "face wash", "serum"],
    "toys": ["board game", "jigsaw puzzle", "building blocks", "plush bear", "remote control car",
             "kite", "card game", "model kit", "yo-yo", "chess set", "doll house", "train set",
             "science kit", "art set", "bubble machine", "skateboard", "scooter"],
    "music": ["acoustic guitar", "guitar strings", "ukulele", "digital piano", "drum sticks",
              "microphone", "audio interface", "metronome", "violin", "harmonica", "capo",
              "guitar tuner", "music stand", "vinyl record", "turntable", "studio monitors"],
    "pets": ["dog leash", "cat tree", "dog bed", "litter box", "pet brush", "chew toy",
             "fish tank", "bird feeder", "dog food", "cat food", "pet carrier", "scratching post"],
    "clothing": ["running shoes", "winter coat", "wool socks", "jeans", "t-shirt", "sweater",
                 "scarf", "gloves", "rain boots", "sneakers", "dress shirt", "hoodie",
                 "swimsuit", "belt", "wallet", "watch strap", "baseball cap", "slippers"],
}

BRANDS = ["Alderbrook", "Brightwell", "Corvane", "Dunmore", "Elmstead", "Fenwick", "Glenhaven",
          "Harrowgate", "Ivycroft", "Juniper & Co.", "Kestrel", "Larkspur", "Mossridge",
          "Northvale", "Oakhurst", "Pinecrest", "Quillon", "Redfern", "Stonebridge", "Thornbury",
          "Umberline", "Valemont", "Westbrook", "Yarrowfield", "Zephyrine", "NovaTek", "PureHome",
          "TrailMark", "SoundLeaf", "KitchenCraft", "BrightBeam", "Cloudnest", "IronPeak",
          "SilverFox", "BlueHarbor", "GreenLeaf", "Maple & Moss", "Arcwell", "Solstice"]

POS_ADJ = ["great", "excellent", "sturdy", "reliable", "comfortable", "well made", "solid",
           "lightweight", "compact", "beautiful", "quiet", "powerful", "easy to use", "durable",
           "versatile", "handy", "elegant", "fantastic", "wonderful", "impressive", "cozy",
           "intuitive", "well designed", "responsive", "accurate", "soft", "bright", "sharp",
           "fast", "efficient", "pleasant", "charming", "gripping", "thoughtful", "practical"]
NEG_ADJ = ["flimsy", "cheap", "noisy", "heavy", "bulky", "disappointing", "overpriced",
           "confusing", "fragile", "awkward", "slow", "uncomfortable", "poorly made", "dull",
           "leaky", "wobbly", "scratchy", "unreliable", "clunky", "dim", "boring", "thin",
           "stiff", "loud", "sticky", "inaccurate", "frustrating", "smelly", "faded"]
MID_ADJ = ["okay", "fine", "decent", "average", "acceptable", "not bad", "so-so", "passable",
           "adequate", "reasonable", "fair", "ordinary", "serviceable", "mixed"]
INTENS = ["very", "really", "quite", "super", "extremely", "surprisingly", "incredibly",
          "fairly", "rather", "pretty", "a bit", "somewhat", "remarkably", "genuinely"]
PEOPLE = ["my wife", "my husband", "my son", "my daughter", "my mom", "my dad", "my sister",
          "my brother", "my grandmother", "my roommate", "my neighbor", "my best friend",
          "my coworker", "my partner", "my kids", "my nephew", "my niece", "my uncle",
          "our dog", "our cat", "my boss", "my teenager", "my in-laws", "my book club"]
OCCASIONS = ["birthday", "anniversary", "Christmas", "Mother's Day", "Father's Day",
             "graduation", "housewarming", "wedding", "retirement", "Valentine's Day",
             "a camping trip", "a road trip", "the holidays", "a move", "a new job", "Hanukkah"]
TIMES = ["two weeks", "a month", "three months", "six months", "a year", "two years",
         "a few days", "a couple of weeks", "eight months", "almost a year", "ten days",
         "a whole summer", "one winter", "18 months", "three years"]
FEATURES = ["battery life", "build quality", "price", "size", "weight", "color", "finish",
            "sound quality", "instructions", "packaging", "customer service", "handle",
            "cord length", "lid", "buttons", "display", "fabric", "stitching", "zipper",
            "smell", "texture", "grip", "design", "shipping", "warranty", "fit", "pages",
            "plot", "characters", "ending", "illustrations", "recipes", "strap", "screen",
            "speed", "noise level", "temperature control", "capacity", "seal", "wheels"]
VERBS_USE = ["use it", "take it", "bring it", "rely on it", "keep it", "pack it",
             "reach for it", "grab it", "pull it out", "set it up", "plug it in", "carry it"]
PLACES = ["in the kitchen", "at work", "on the trail", "at the beach", "in the car",
          "in my apartment", "on the porch", "at the office", "in the garage", "at the gym",
          "on the train", "on vacation", "in the garden", "at my desk", "in the dorm",
          "at the cabin", "in the basement", "on flights", "at school", "in the living room"]
CITIES = ["Portland", "Denver", "Austin", "Boston", "Chicago", "Seattle", "Atlanta", "Phoenix",
          "Toronto", "Dublin", "Leeds", "Glasgow", "Melbourne", "Auckland", "Vancouver",
          "Nashville", "Cleveland", "Pittsburgh", "Madison", "Tucson", "Halifax", "Bristol"]
NAMES = ["Alice", "Ben", "Carmen", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Isabel",
         "Jamal", "Keiko", "Liam", "Maya", "Nikolai", "Olivia", "Pedro", "Quinn", "Rosa",
         "Samir", "Tara", "Umar", "Valerie", "Wei", "Ximena", "Yusuf", "Zoe", "Renée",
         "José", "Zoë", "André", "Chloé", "Björn", "Noël", "François", "Søren", "Inés"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
UNITS = ["mm", "cm", "inches", "feet", "lbs", "kg", "oz", "grams", "watts", "mAh", "GB",
         "ml", "liters", "cups", "minutes", "hours", "degrees", "volts", "TB", "Hz", "dB"]
EMOTICONS = [":)", ":-)", ";)", ":(", ":D", ":P", "<3", "^_^", ":/", "xD", ":-(", "(:"]
INTERJ = ["Wow", "Honestly", "Well", "Ugh", "Okay", "Hmm", "Oh", "Yikes", "Whoa", "Meh",
          "Seriously", "Phew", "Sigh", "Alright", "Ha", "Gosh", "Frankly", "Look"]
CONNECT = ["However", "Also", "That said", "On the other hand", "Overall", "In short",
           "To be fair", "Still", "Plus", "Unfortunately", "Fortunately", "Besides",
           "Even so", "Meanwhile", "In fact", "Anyway", "Then again", "Admittedly"]

# General prose vocabulary.
NOUNS = ["river", "mountain", "village", "library", "garden", "market", "bridge", "station",
         "harbor", "forest", "museum", "island", "valley", "orchard", "lighthouse", "meadow",
         "committee", "council", "experiment", "theory", "engine", "canal", "festival",
         "neighborhood", "storm", "season", "recipe", "journey", "letter", "painting",
         "concert", "laboratory", "hospital", "school", "factory", "farm", "newspaper",
         "telescope", "satellite", "glacier", "desert", "volcano", "cathedral", "railway",
         "manuscript", "orchestra", "workshop", "bakery", "vineyard", "tunnel", "observatory"]
PROSE_ADJ = ["old", "quiet", "busy", "ancient", "modern", "small", "vast", "narrow", "bright",
             "distant", "famous", "forgotten", "crowded", "peaceful", "remote", "historic",
             "local", "northern", "southern", "coastal", "rural", "urban", "early", "late",
             "curious", "careful", "patient", "steady", "gentle", "sudden", "rapid", "simple"]
PROSE_VERBS = ["opened", "closed", "crossed", "visited", "described", "measured", "built",
               "repaired", "studied", "painted", "carried", "discovered", "followed",
               "reached", "watched", "recorded", "announced", "celebrated", "explored",
               "questioned", "restored", "explained", "collected", "planted", "delivered"]
SUBJECTS = ["The mayor", "A young engineer", "The old fisherman", "Our teacher",
            "The research team", "A traveling musician", "The baker", "The farmers",
            "A small group of volunteers", "The captain", "Her grandfather", "The children",
            "The new manager", "A local historian", "The gardener", "Two students",
            "The author", "The committee", "A retired nurse", "The pilot", "The librarian"]
TOPICS = ["the weather", "the harvest", "the election", "the new bridge", "rising prices",
          "the school budget", "the train schedule", "the summer festival", "the flood",
          "the museum's collection", "the annual marathon", "solar panels", "the old mill",
          "public transport", "the city park", "recycling rules", "the water supply"]


# A general English lexicon for free-form sentences, so that the tokenizer sees a realistic
# spread of words and inflections rather than only the review templates' vocabulary.
LEX_NOUNS = """
ability account act action activity address advantage advice afternoon age agency agreement
air airport alarm album amount animal answer apartment apple area argument arm army arrival
article artist aspect assignment assistant atmosphere attempt attention audience aunt author
autumn average baby back background bag balance ball balloon band bank bar basket bath battery
battle beach bean bear bed bedroom bee beer behavior bell belt bench benefit bicycle bill bird
birth blanket block blood board boat body bone bonus border bottle bottom bowl box boy brain
branch bread breakfast brick bridge brother brush bucket budget bug building bus business
butter button cabin cabinet cable cake calendar camera camp campaign canal candidate candle
cap capital captain car card career carpet carrot case cash castle cat category ceiling cell
century chain chair chairman challenge champion chance change channel chapter character
charity chart cheek cheese chemistry chest chicken chief child childhood chimney chocolate
choice church cigarette circle citizen city claim class classroom clerk client cliff climate
clock cloth cloud club coach coast coat code coffee coin collar colleague college color column
comb comfort comment committee community company comparison competition complaint computer
concept concern concert condition conference connection consequence context contract
conversation cook cookie corner cost cottage cotton couch country county couple courage
course court cousin cover cow crack craft cream credit crew crime crop cross crowd crown cup
cupboard curtain curve customer cycle dad damage dance danger data daughter day deal death
debate debt decade decision deck definition degree delivery demand dentist department deposit
depth description desert design desk detail device diamond diet difference dinner direction
director dirt disaster discipline discount discussion disease dish distance district doctor
document dog door dot drawer drawing dream dress drink driver drop drug drum duck dust duty
ear earth economy edge editor education effect effort egg election element elephant elevator
emergency emotion employee employer energy engine engineer entrance entry environment
equipment error escape essay estate evening event evidence exam example exchange exercise
exit experience expert explanation expression eye face fact factor failure fall family fan
farm farmer fashion father fault fear feature fee feedback feeling fence festival fever field
fight figure file film finger fire fish flag flight floor flower fly focus fog food foot
football force forest fork form fortune foundation fox frame freedom friend friendship fruit
fuel function funeral furniture future game gap garage garbage garden gas gate gene gift
girl glass glove goal goat gold golf government grade grain grandfather grass gravity ground
group growth guard guest guide guitar gun habit hair half hall hammer hand handle harbor hat
head health heart heat height helicopter hero highway hill history hobby hole holiday home
homework honey hook hope horse hospital host hotel hour house housing human hunger husband
ice idea image impact importance impression improvement incident income industry infant
information injury ink insect inside instance instruction instrument insurance intention
interest internet interview introduction investment iron island issue item jacket jar job
joke journal journey judge juice jump jungle jury key keyboard kid kilometer king kitchen kite
knee knife knowledge label lab ladder lady lake lamp land landscape language laptop laugh law
lawyer layer leader leaf league lecture leg lemon length lesson letter level library license
lid life light limit line lion lip list literature loan location lock log loss love luck lunch
machine magazine mail manager manner map market marriage match material math matter meal
meaning measure meat medicine meeting member memory menu message metal method middle midnight
milk mind minute mirror mission mistake mixture model moment money monkey month mood moon
morning mother motor mountain mouse mouth movement movie mud muscle museum music nail name
nation nature neck needle neighbor nerve nest net network news night noise north nose note
notebook notice novel number nurse object ocean offer office officer oil onion opinion
opportunity option orange order organization outcome oven owner package page pain paint pair
palace pan paper parent park parking part partner party passage passenger passion password
past path patience patient pattern payment peace pen pencil people pepper percentage
performance period permission person pet phone photo phrase piano picture pie piece pig pile
pillow pilot pin pipe pizza place plan plane planet plant plastic plate platform player plenty
pocket poem poet point police policy politics pollution pool population position post pot
potato pound powder power practice preference presence president pressure price pride priest
prince principle printer priority prison prize problem procedure process product profession
profile profit program progress project promise proof property proposal protection pub public
pumpkin purpose puzzle quality quantity quarter queen question quote rabbit race radio rain
range rate reaction reader reality reason receipt recipe record region relation relationship
relief report request research resident resource response rest restaurant result review
reward rhythm rice river road robot rock role roof room root rope rose route routine rule
safety sail salad salary sale salt sample sand sandwich satisfaction sauce scale scene
schedule scheme scholar science scientist score screen script sea season seat secret
secretary section sector security seed selection sense series servant service session
setting shadow shape share sheep shelf shell shelter shift ship shirt shock shoe shop shoulder
show shower side sign signal silence silk silver singer sister site situation size skill skin
skirt sky sleep slice slide smell smile smoke snake snow soap society sock sofa soil soldier
solution son song sound soup source south space speaker speech speed spider spirit sport
spot spring square stable staff stage stairs standard star start state statement station
statue status steak steel step stick stomach stone store storm story stove strategy straw
stream street strength stress string structure student studio style subject success sugar
suggestion suit summer sun supermarket supply surface surgery surprise survey sweater symbol
system table tail talent task taste tax taxi tea teacher team tear technology teeth telephone
television temperature tennis tension term territory test text theater theme theory thing
thought thread throat ticket tie tiger time tip title toast today toe tomato tomorrow tone
tongue tool tooth top topic total tourist towel tower town toy track trade tradition traffic
train training transport trap travel treat tree trend trial trick trip trouble truck truth
tunnel turn twin type uncle union unit universe university user vacation valley value van
variety vegetable vehicle version video view village violin virus visit visitor voice volume
vote wage wagon waiter wall wallet war warning wash watch water wave way weakness wealth
weapon weather wedding week weekend weight wheel whistle wife wind window wine wing winner
winter wire witness wolf woman wonder wood word work worker world worry wound writer writing
yard year yesterday youth zone
"""

LEX_VERBS = """
accept achieve add admire admit adopt advise afford agree allow announce annoy answer appear
apply appreciate approve argue arrange arrest arrive ask attach attack attend avoid bake
balance ban bathe behave belong boil book borrow bother bounce brush burn call camp care carry
cause celebrate challenge change charge chase cheat check cheer chew chop claim clean clear
climb close collect comb complain complete concentrate confess connect consider contain
continue copy correct cough count cover crash crawl create cross crush cry cure cycle damage
dance decide decorate deliver depend describe deserve destroy develop disagree disappear
discover dislike divide doubt drag dress drop dry earn educate employ empty encourage end
enjoy enter entertain escape examine excite excuse exercise exist expand expect explain
explore express face fail fasten fear fetch file fill film finish fire fit fix flash float
flood flow fold follow force form frighten fry gather gaze glow glue grab grate greet grin
grip groan guarantee guard guess guide hammer hand handle hang happen harm hate heat help
hook hop hope hover hug hunt hurry identify ignore imagine impress improve include increase
influence inform inject injure instruct intend interest interrupt introduce invent invite
irritate itch jail jam jog join joke judge juggle jump kick kill kiss kneel knit knock knot
label land last laugh launch learn level license lick lie lighten like list listen live load
lock long look love manage march mark marry match mate matter measure melt memorize mend
mention milk mine miss mix moan moor mourn move muddle mug multiply murder nail name need
nest nod note notice number obey object observe obtain occur offend offer open order overflow
owe own pack paddle paint park part pass paste pat pause peck pedal peel peep perform permit
phone pick pinch pine place plan plant play please plug point poke polish pop possess post
pour practice pray preach precede prefer prepare present preserve press pretend prevent prick
print produce program promise protect provide pull pump punch puncture punish push question
queue race radiate rain raise reach realize receive recognize record reduce reflect refuse
regret reign reject rejoice relax release rely remain remember remind remove repair repeat
replace reply report reproduce request rescue retire return rhyme rinse risk rob rock roll rot
rub ruin rule rush sack sail satisfy save saw scare scatter scold scorch scrape scratch scream
screw scribble scrub seal search separate serve settle shade share shave shelter shiver shock
shop shrug sigh sign signal sin sip ski skip slap slip slow smash smell smile smoke snatch
sneeze sniff snore snow soak soothe sound spare spark sparkle spell spill spoil spot spray
sprout squash squeak squeal squeeze stain stamp stare start stay steer step stir stitch stop
store strap strengthen stretch strip stroke stuff subtract succeed suck suffer suggest suit
supply support suppose surprise surround suspect suspend switch talk tame tap taste tease
telephone tempt terrify test thank thaw tick tickle tie time tip tire touch tour tow trace
trade train transport trap travel treat tremble trick trip trot trouble trust try tug tumble
turn twist type undress unfasten unite unlock unpack untidy use vanish visit wail wait walk
wander want warm warn wash waste watch water wave weigh welcome whine whip whirl whisper
whistle wink wipe wish wobble wonder work worry wrap wreck wrestle wriggle yawn yell zip zoom
"""

LEX_IRREGULAR = """
be:was:been begin:began:begun bite:bit:bitten blow:blew:blown break:broke:broken
bring:brought:brought build:built:built buy:bought:bought catch:caught:caught
choose:chose:chosen come:came:come cut:cut:cut dig:dug:dug do:did:done draw:drew:drawn
drink:drank:drunk drive:drove:driven eat:ate:eaten fall:fell:fallen feed:fed:fed
feel:felt:felt fight:fought:fought find:found:found fly:flew:flown forget:forgot:forgotten
forgive:forgave:forgiven freeze:froze:frozen get:got:gotten give:gave:given go:went:gone
grow:grew:grown have:had:had hear:heard:heard hide:hid:hidden hit:hit:hit hold:held:held
hurt:hurt:hurt keep:kept:kept know:knew:known lay:laid:laid lead:led:led leave:left:left
lend:lent:lent let:let:let lose:lost:lost make:made:made mean:meant:meant meet:met:met
pay:paid:paid put:put:put read:read:read ride:rode:ridden ring:rang:rung rise:rose:risen
run:ran:run say:said:said see:saw:seen sell:sold:sold send:sent:sent set:set:set
shake:shook:shaken shine:shone:shone shoot:shot:shot show:showed:shown shut:shut:shut
sing:sang:sung sink:sank:sunk sit:sat:sat sleep:slept:slept speak:spoke:spoken
spend:spent:spent stand:stood:stood steal:stole:stolen stick:stuck:stuck sting:stung:stung
strike:struck:struck swear:swore:sworn sweep:swept:swept swim:swam:swum swing:swung:swung
take:took:taken teach:taught:taught tear:tore:torn tell:told:told think:thought:thought
throw:threw:thrown understand:understood:understood wake:woke:woken wear:wore:worn
win:won:won write:wrote:written
"""

LEX_ADJS = """
able absent active actual afraid alert alive angry annual anxious apparent automatic aware
awful bad bare basic beautiful big bitter blank blind blue bold bored brave brief bright
brilliant broad brown busy calm capable careful careless casual cheap cheerful chemical
civil classic clean clear clever close cloudy cold comfortable common complete complex
confident conscious constant content cool correct crazy creative critical crowded cruel
curious current cute daily damp dangerous dark dead dear decent deep delicate delicious
dense different difficult digital direct dirty distant double dramatic dry dull eager early
eastern easy economic educational efficient elderly electric electronic elegant empty equal
essential even evil exact excellent exciting expensive external extra extreme fair faithful
false familiar famous fancy far fast fat fatal favorite fierce final financial fine firm fit
flat flexible foggy foolish foreign formal former free fresh friendly front full funny
general gentle genuine giant glad global golden good gradual grand grateful gray great green
gross guilty handsome happy hard harsh healthy heavy helpful hidden high historical holy
honest hopeful horrible hot huge human humble hungry ideal ill illegal immediate important
impossible independent individual industrial informal initial inner innocent intense
internal interesting invisible jealous junior kind large late lazy legal light likely little
live local lonely long loose loud lovely low loyal lucky mad magic main major male mature
medical mental mere mild military minor mobile moderate modern moist moral narrow nasty
national native natural neat necessary negative nervous new nice noble noisy normal northern
numerous obvious odd official old open opposite ordinary organic original outer overall
pale parallel partial past patient peaceful perfect permanent personal physical plain
pleasant polite political poor popular positive possible powerful practical precious
pregnant present pretty previous primary private productive professional proper proud public
pure quick quiet rapid rare raw ready real recent red regular relevant remote rich right
rough round royal rude rural sad safe salty same scared secret secure senior sensitive
separate serious severe sexual shallow sharp short shy sick significant silent silly similar
simple single slight slim slow small smart smooth social soft solid sorry sour southern
spare special specific spicy stable steady steep sticky stiff strange strict strong stupid
subtle sudden sufficient sunny super sure sweet swift tall tender terrible thick thin
thirsty tidy tight tiny tired total tough traditional tropical true typical ugly unable
unique united unusual upper upset urban useful usual vague valid various vast violent
virtual visible vital vivid warm weak wealthy weird western wet white whole wide wild wise
wooden working worried worth wrong young
"""

PREPS = ["in", "on", "at", "under", "over", "behind", "beside", "near", "across", "through",
         "into", "from", "toward", "around", "after", "before", "during", "without", "with",
         "between", "among", "beyond", "along", "inside", "outside", "against", "despite"]
DETS = ["the", "the", "the", "a", "this", "that", "every", "one", "another", "her", "his",
        "their", "our", "my", "your", "some", "no", "each"]
PRONOUNS = ["she", "he", "they", "we", "I", "you", "it", "someone", "everyone", "nobody"]
ADVS_EXTRA = ["often", "never", "always", "rarely", "soon", "already", "still", "almost",
              "perhaps", "maybe", "together", "yesterday", "tomorrow", "tonight", "again",
              "instead", "indeed", "nearly", "hardly", "abroad", "upstairs", "outdoors"]
CONJS = ["and", "but", "so", "because", "although", "while", "until", "since", "when",
         "before", "after", "unless", "whereas", "as soon as", "even though"]


# ---------------------------------------------------------------------------------------------
# Helpers.

def cap(s):
    return s[:1].upper() + s[1:] if s else s


def number(r):
    kind = r.randrange(9)
    if kind == 0:
        return str(r.randrange(2, 100))
    if kind == 1:
        return str(r.randrange(100, 10000))
    if kind == 2:
        return "{:,}".format(r.randrange(1000, 5000000))
    if kind == 3:
        return "{:.1f}".format(r.uniform(0, 100))
    if kind == 4:
        return "{:.2f}".format(r.uniform(0, 1000))
    if kind == 5:
        return str(r.randrange(1950, 2031))
    if kind == 6:
        return "{}%".format(r.randrange(1, 101))
    if kind == 7:
        return "{}/{}".format(r.randrange(1, 10), r.randrange(2, 11))
    return str(r.randrange(0, 10))


def price(r):
    cur = r.choice(["$", "$", "$", "£", "€", "US$"])
    if r.random() < 0.5:
        return "{}{}".format(cur, r.randrange(5, 400))
    return "{}{}.{:02d}".format(cur, r.randrange(1, 900), r.choice([0, 49, 95, 99, r.randrange(100)]))


def date(r):
    m, d, y = r.randrange(1, 13), r.randrange(1, 29), r.randrange(1990, 2031)
    style = r.randrange(5)
    if style == 0:
        return "{}/{}/{}".format(m, d, y)
    if style == 1:
        return "{:04d}-{:02d}-{:02d}".format(y, m, d)
    if style == 2:
        return "{} {}, {}".format(MONTHS[m - 1], d, y)
    if style == 3:
        return "{} {} {}".format(d, MONTHS[m - 1], y)
    return "{}, {} {}".format(DAYS[r.randrange(7)], MONTHS[m - 1], d)


def clock(r):
    if r.random() < 0.5:
        return "{}:{:02d} {}".format(r.randrange(1, 13), r.randrange(0, 60, 5), r.choice(["am", "pm", "a.m.", "p.m.", "AM", "PM"]))
    return "{:02d}:{:02d}".format(r.randrange(24), r.randrange(60))


def measure(r):
    return "{} {}".format(r.choice([str(r.randrange(1, 500)), "{:.1f}".format(r.uniform(0.1, 50))]), r.choice(UNITS))


# ---------------------------------------------------------------------------------------------
# Free-form sentences from the lexicon, with English inflection rules.

def _words(block):
    return block.split()


NOUN_LIST = _words(LEX_NOUNS)
VERB_LIST = _words(LEX_VERBS)
ADJ_LIST = _words(LEX_ADJS)
IRREGULAR = {w[0]: (w[1], w[2]) for w in (x.split(":") for x in _words(LEX_IRREGULAR))}
VERB_ALL = VERB_LIST + list(IRREGULAR)
PLURAL_EXCEPT = {"child": "children", "foot": "feet", "tooth": "teeth", "man": "men",
                 "woman": "women", "mouse": "mice", "person": "people", "sheep": "sheep",
                 "fish": "fish", "people": "people", "teeth": "teeth", "knife": "knives",
                 "leaf": "leaves", "wolf": "wolves", "shelf": "shelves", "half": "halves",
                 "life": "lives", "wife": "wives", "potato": "potatoes", "tomato": "tomatoes",
                 "hero": "heroes", "thief": "thieves", "data": "data", "news": "news",
                 "series": "series", "stairs": "stairs", "species": "species"}
UNCOUNTABLE = set(_words("""advice air bread butter cash chemistry cheese chocolate coffee
    cotton dirt dust education energy equipment evidence feedback fog freedom fuel furniture
    garbage gold gravity health heat homework honey housing hunger information ink internet
    iron knowledge literature luck math milk money mud music oil patience peace pepper
    plastic pollution powder pride research rice safety salt sand satisfaction silence silk
    silver smoke snow soap soil steel straw sugar tea technology traffic transport water
    wealth weather wine wood youth"""))
ADVERB_EXCEPT = {"good": "well", "fast": "fast", "hard": "hard", "late": "lately",
                 "early": "early", "daily": "daily", "friendly": "kindly", "lonely": "alone",
                 "likely": "probably", "lovely": "beautifully", "silly": "foolishly",
                 "public": "publicly", "whole": "wholly", "true": "truly", "due": "duly"}
VOWELS = "aeiou"


def _vowel_groups(w):
    return len([m for m in re.finditer("[aeiouy]+", w)])


def _doubles(w):
    # stop -> stopped, plan -> planned; open -> opened (two syllables: no doubling).
    return (len(w) >= 3 and w[-1] not in VOWELS + "wxy" and w[-2] in VOWELS
            and w[-3] not in VOWELS and _vowel_groups(w) == 1)


def plural(n):
    if n in PLURAL_EXCEPT:
        return PLURAL_EXCEPT[n]
    if n.endswith(("s", "x", "z", "ch", "sh")):
        return n + "es"
    if n.endswith("y") and n[-2] not in VOWELS:
        return n[:-1] + "ies"
    return n + "s"


def third_person(v):
    return {"be": "is", "have": "has", "do": "does", "go": "goes"}.get(v) or plural(v)


def past(v):
    if v in IRREGULAR:
        return IRREGULAR[v][0]
    if v.endswith("e"):
        return v + "d"
    if v.endswith("y") and v[-2] not in VOWELS:
        return v[:-1] + "ied"
    if _doubles(v):
        return v + v[-1] + "ed"
    return v + "ed"


def participle(v):
    return IRREGULAR[v][1] if v in IRREGULAR else past(v)


def gerund(v):
    if v == "be":
        return "being"
    if v.endswith("ie"):
        return v[:-2] + "ying"
    if v.endswith("e") and not v.endswith(("ee", "ye", "oe")) and len(v) > 2:
        return v[:-1] + "ing"
    if _doubles(v):
        return v + v[-1] + "ing"
    return v + "ing"


def adverb(a):
    if a in ADVERB_EXCEPT:
        return ADVERB_EXCEPT[a]
    if a.endswith("y"):
        return a[:-1] + "ily"
    if a.endswith("le"):
        return a[:-1] + "y"
    if a.endswith("ic"):
        return a + "ally"
    if a.endswith("ll"):
        return a + "y"
    return a + "ly"


def comparative(a, most=False):
    if _vowel_groups(a) > 1 and not a.endswith("y") or len(a) > 7:
        return ("most " if most else "more ") + a
    suffix = "est" if most else "er"
    if a.endswith("y"):
        return a[:-1] + "i" + suffix
    if a.endswith("e"):
        return a + suffix[1:]
    if _doubles(a):
        return a + a[-1] + suffix
    return a + suffix


def article(phrase):
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def noun_phrase(r):
    """Returns (text, person) where person is '3s', 'pl' or '1s'."""
    k = r.randrange(10)
    adj = ""
    if r.random() < 0.45:
        adj = r.choice(ADJ_LIST) + " "
        if r.random() < 0.12:
            adj = r.choice(["very", "rather", "quite", "so", "too"]) + " " + adj
        elif r.random() < 0.08:
            adj = comparative(adj.strip(), most=r.random() < 0.5) + " "
    noun = r.choice(NOUN_LIST)
    if k < 4 and noun not in UNCOUNTABLE:
        det = r.choice(DETS)
        phrase = adj + noun
        return (article(phrase) if det == "a" else det + " " + phrase), "3s"
    if k < 7:
        det = r.choice(["the", "some", "many", "few", "several", "two", "three", "twelve",
                        "those", "these", "most", "all the", "both", str(r.randrange(2, 400))])
        if noun in UNCOUNTABLE:
            det = r.choice(["the", "some", "much", "no", "enough", "little", "more", "their"])
            return det + " " + adj + noun, "3s"
        return det + " " + adj + plural(noun), "pl"
    if k < 8:
        return r.choice(NAMES), "3s"
    p = r.choice(PRONOUNS)
    return p, {"I": "1s", "we": "pl", "they": "pl", "you": "pl"}.get(p, "3s")


def object_phrase(r):
    text, _ = noun_phrase(r)
    return {"I": "me", "he": "him", "she": "her", "we": "us", "they": "them",
            "someone": "someone", "everyone": "everyone", "nobody": "nobody"}.get(text, text)


def verb_phrase(r, person):
    v = r.choice(VERB_ALL)
    k = r.randrange(8)
    if k == 0:
        vp = v if person != "3s" else third_person(v)
        if v == "be":
            vp = {"1s": "am", "3s": "is"}.get(person, "are")
    elif k in (1, 2):
        vp = past(v)
        if v == "be":
            vp = "were" if person == "pl" else "was"
    elif k == 3:
        vp = "will " + v
    elif k == 4:
        vp = ("has " if person == "3s" else "have ") + participle(v)
    elif k == 5:
        aux = {"1s": "was", "3s": "was"}.get(person, "were")
        if r.random() < 0.5:
            aux = {"1s": "am", "3s": "is"}.get(person, "are")
        vp = aux + " " + gerund(v)
    elif k == 6:
        vp = r.choice(["could", "should", "might", "must", "would", "can", "may"]) + " " + v
    else:
        vp = r.choice(["did not", "does not" if person == "3s" else "do not", "never"]) + " " + v
    if r.random() < 0.15:
        vp = adverb(r.choice(ADJ_LIST)) + " " + vp
    if r.random() < 0.7:
        vp += " " + object_phrase(r)
    if r.random() < 0.5:
        vp += " " + r.choice(PREPS) + " " + object_phrase(r)
    if r.random() < 0.15:
        vp += " " + r.choice(ADVS_EXTRA)
    return vp


def clause(r):
    subj, person = noun_phrase(r)
    return subj + " " + verb_phrase(r, person)


def free_sentence(r):
    s = clause(r)
    if r.random() < 0.35:
        s += r.choice([", ", " "]) + r.choice(CONJS) + " " + clause(r)
    k = r.randrange(12)
    if k == 0:
        return "\"{}{}\" {} {}.".format(cap(s), r.choice([",", "?", "!"]), r.choice(["said", "asked", "replied", "whispered", "shouted", "explained"]), r.choice(NAMES))
    if k == 1:
        return cap(r.choice(["why", "how", "when", "where"])) + " " + r.choice(["did", "does", "will", "could"]) + " " + clause(r) + "?"
    if k == 2:
        return cap(r.choice(CONNECT)) + ", " + s + "."
    if k == 3:
        return cap(s) + " (" + r.choice(["or so", "apparently", "again", "as usual", "allegedly", "see page " + str(r.randrange(1, 300))]) + ")."
    if k == 4:
        return cap(s) + "; " + clause(r) + "."
    if k == 5:
        return cap(s) + " — " + clause(r) + "."
    return cap(s) + r.choice([".", ".", ".", ".", "!", "..."])


# ---------------------------------------------------------------------------------------------
# Users: each has a rating tendency and writing habits that show up in every review.

class User:
    def __init__(self, r, uid):
        self.uid = uid
        self.exclaim = r.choice([0, 0, 1, 2, 3])          # number of "!" per emphatic sentence
        self.lowercase = r.random() < 0.12
        self.ellipsis = r.random() < 0.2
        self.emoticon = r.random() < 0.2
        self.british = r.random() < 0.15
        self.specs = r.random() < 0.3                      # mentions numbers and measurements
        self.lists = r.random() < 0.2                      # "Pros: ... Cons: ..."
        self.stars_prefix = r.random() < 0.15
        self.family = r.random() < 0.4
        self.signoff = r.choice([None, None, None, "Highly recommend.", "Would buy again.",
                                 "Just my two cents.", "Hope this helps!", "5 stars from me.",
                                 "Buyer beware.", "Thanks for reading.", "Cheers!", "-- " + r.choice(NAMES)])
        self.catchphrase = r.choice(["No complaints here", "Does what it says on the tin",
                                     "Worth every penny", "You get what you pay for",
                                     "Not my cup of tea", "Game changer", "Can't beat it",
                                     "Meh, it's fine", "Ten out of ten", "Solid buy",
                                     "Color me impressed", "Live and learn", None, None, None])
        self.verbosity = r.choice([1, 2, 3, 4, 6])
        self.fav_category = r.choice(list(CATEGORIES))
        self.bias = r.choice([-1, 0, 1, 1, 1])

    def spell(self, s):
        if self.british:
            for us, uk in (("color", "colour"), ("favorite", "favourite"), ("organize", "organise"),
                           ("center", "centre"), ("gray", "grey"), ("flavor", "flavour"),
                           ("realize", "realise"), ("neighbor", "neighbour"), ("mom", "mum")):
                s = s.replace(us, uk)
        if self.lowercase:
            s = s.lower()
        return s


def adj_for(r, rating):
    if rating >= 4:
        return r.choice(POS_ADJ)
    if rating <= 2:
        return r.choice(NEG_ADJ)
    return r.choice(MID_ADJ + POS_ADJ[:5] + NEG_ADJ[:5])


def end(r, u, emphatic=False):
    if u.ellipsis and r.random() < 0.3:
        return "..."
    if emphatic and u.exclaim:
        return "!" * u.exclaim
    return "."


def review_sentence(r, u, item, rating):
    a = adj_for(r, rating)
    i = r.choice(INTENS)
    f = r.choice(FEATURES)
    t = r.choice(TIMES)
    who = r.choice(PEOPLE)
    k = r.randrange(26)
    if k == 0:
        s = "This {} is {} {}{}".format(item, i, a, end(r, u, True))
    elif k == 1:
        s = "I have been using this {} for {} now and it is still {}{}".format(item, t, a, end(r, u))
    elif k == 2:
        s = "The {} is {}, but the {} could be better{}".format(f, a, r.choice(FEATURES), end(r, u))
    elif k == 3:
        s = "Bought it for {} as a {} gift and {} loved it{}".format(who, r.choice(OCCASIONS), r.choice(["they", "she", "he"]), end(r, u, True))
    elif k == 4:
        s = "I {} {} almost every day{}".format(r.choice(VERBS_USE), r.choice(PLACES), end(r, u))
    elif k == 5:
        s = "For {}, you really can't go wrong{}".format(price(r), end(r, u, True))
    elif k == 6:
        s = "It arrived on {} in {} condition{}".format(date(r), r.choice(["perfect", "good", "rough", "great", "damaged", "mint"]), end(r, u))
    elif k == 7:
        s = "Compared to my old {} from {}, this one is {} {}{}".format(item, r.choice(BRANDS), i, a, end(r, u))
    elif k == 8:
        s = "My only complaint is the {}{}".format(f, end(r, u))
    elif k == 9:
        s = "{}, the {} feels {}{}".format(r.choice(CONNECT), f, a, end(r, u))
    elif k == 10:
        s = "It weighs about {} {} and measures roughly {} {} across{}".format(number(r), r.choice(["lbs", "kg", "oz", "grams", "pounds"]), number(r), r.choice(["mm", "cm", "inches", "feet"]), end(r, u))
    elif k == 11:
        s = "After {}, the {} started to {}{}".format(t, f, r.choice(["fade", "wear out", "crack", "peel", "loosen", "rattle", "hold up fine", "look new"]), end(r, u))
    elif k == 12:
        s = "{} {} it {}{}".format(cap(who), r.choice(["says", "thinks", "agrees", "swears"]), r.choice(["is the best thing I bought this year", "was a waste of money", "works better than expected", "looks great", "is too small"]), end(r, u))
    elif k == 13:
        s = "I would {} this to anyone who {}{}".format(r.choice(["recommend", "not recommend", "happily recommend", "suggest"]), r.choice(["cooks a lot", "travels often", "works from home", "has kids", "camps on weekends", "reads before bed", "likes gadgets", "is on a budget"]), end(r, u))
    elif k == 14:
        s = "Setup took {} minutes, and the instructions were {}{}".format(r.randrange(2, 90), r.choice(["clear", "useless", "fine", "confusing", "missing", "in tiny print"]), end(r, u))
    elif k == 15:
        s = "The {} version costs {} more, which I don't think is worth it{}".format(r.choice(["premium", "larger", "deluxe", "pro", "newer", "blue"]), price(r), end(r, u))
    elif k == 16:
        s = "{}{} {}".format(r.choice(INTERJ), r.choice([",", "!", "..."]), "I did not expect it to be this {}{}".format(a, end(r, u, True)))
    elif k == 17:
        s = "I ordered two, one for me and one for {}{}".format(who, end(r, u))
    elif k == 18:
        s = "Customer service replied within {} hours and sent a replacement{}".format(r.randrange(1, 72), end(r, u))
    elif k == 19:
        s = "It's {} {}, {}, and {}{}".format(i, a, adj_for(r, rating), adj_for(r, rating), end(r, u))
    elif k == 20:
        s = "The {} from {} is {} than this one{}".format(item, r.choice(BRANDS), r.choice(["better", "worse", "cheaper", "louder", "smaller", "nicer", "sturdier"]), end(r, u))
    elif k == 21:
        s = "I gave it {} stars because of the {}{}".format(rating, f, end(r, u))
    elif k == 22:
        s = "We've had it since {} and it's been used {} times at least{}".format(r.choice(MONTHS), r.randrange(10, 500), end(r, u))
    elif k == 23:
        s = "Don't bother with the {}; just get this{}".format(r.choice(["cheaper knockoffs", "older model", "store brand", "refurbished ones", "bundle"]), end(r, u, True))
    elif k == 24:
        s = "It fits {} perfectly and still leaves room for {}{}".format(r.choice(PLACES), r.choice(["a second one", "the charger", "my other gear", "extra batteries", "the lid"]), end(r, u))
    else:
        s = "{} and I {} {} on our {} trip to {}{}".format(cap(who), r.choice(["used it", "tested it", "brought it"]), r.choice(["every day", "twice", "all week", "nonstop"]), r.choice(["last", "first", "summer", "winter", "spring"]), r.choice(CITIES), end(r, u))
    return s


def book_sentence(r, u, rating):
    a = adj_for(r, rating)
    k = r.randrange(8)
    if k == 0:
        return "The {} felt {} and the {} was {}{}".format(r.choice(["plot", "pacing", "writing", "dialogue"]), a, r.choice(["ending", "middle", "twist", "setting"]), adj_for(r, rating), end(r, u))
    if k == 1:
        return "I finished all {} pages in {} sittings{}".format(r.randrange(120, 900), r.randrange(1, 9), end(r, u, True))
    if k == 2:
        return "The main character, {}, grows up in {} and moves to {} in {}{}".format(r.choice(NAMES), r.choice(CITIES), r.choice(CITIES), r.randrange(1850, 2024), end(r, u))
    if k == 3:
        return "Chapter {} is where it really {}{}".format(r.randrange(1, 40), r.choice(["picks up", "falls apart", "shines", "drags", "gets dark"]), end(r, u))
    if k == 4:
        return "If you liked the author's earlier books, this one is {} {}{}".format(r.choice(INTENS), a, end(r, u))
    if k == 5:
        return "\"{}\" is a line I keep thinking about{}".format(cap(r.choice(PROSE_ADJ)) + " " + r.choice(NOUNS) + "s never " + r.choice(["sleep", "forget", "lie", "wait", "change"]), end(r, u))
    if k == 6:
        return "I read it with {} and we both {} it{}".format(r.choice(PEOPLE), r.choice(["loved", "hated", "enjoyed", "abandoned", "devoured"]), end(r, u))
    return "The {} edition has {} illustrations and {} cover{}".format(r.choice(["hardcover", "paperback", "Kindle", "audiobook", "second"]), r.randrange(0, 80), article(a), end(r, u))


def review(r, u):
    cat = u.fav_category if r.random() < 0.6 else r.choice(list(CATEGORIES))
    item = r.choice(CATEGORIES[cat])
    brand = r.choice(BRANDS)
    rating = max(1, min(5, r.choice([1, 2, 3, 4, 5, 5, 4]) + u.bias))
    parts = []
    if u.stars_prefix:
        parts.append(r.choice(["{}/5 stars.".format(rating), "Rating: {} out of 5.".format(rating),
                               "★" * rating + "☆" * (5 - rating), "[{} stars]".format(rating)]))
    if r.random() < 0.35:
        parts.append("{} {} review{}".format(brand, item, r.choice([":", " -", " —", "."])))
    n = max(1, u.verbosity + r.randrange(-1, 3))
    for _ in range(n):
        if cat == "books" and r.random() < 0.6:
            parts.append(book_sentence(r, u, rating))
        elif r.random() < 0.2:
            parts.append(free_sentence(r))
        else:
            parts.append(review_sentence(r, u, item, rating))
        if u.family and r.random() < 0.15:
            parts.append("{} {} it too{}".format(cap(r.choice(PEOPLE)), r.choice(["uses", "borrows", "likes", "complains about"]), end(r, u)))
        if u.specs and r.random() < 0.25:
            parts.append("Specs: {}, {}, {}.".format(measure(r), measure(r), price(r)))
        if u.emoticon and r.random() < 0.4:
            parts[-1] += " " + r.choice(EMOTICONS)
    if u.lists and r.random() < 0.7:
        parts.append("Pros: {}, {}. Cons: {}.".format(r.choice(POS_ADJ), r.choice(FEATURES), r.choice(NEG_ADJ)))
    if u.catchphrase and r.random() < 0.5:
        parts.append(u.catchphrase + end(r, u, True))
    if u.signoff and r.random() < 0.6:
        parts.append(u.signoff)
    return u.spell(" ".join(parts))


def summary(r, u):
    # Review titles, LongLaMP's "summary" field.
    k = r.randrange(6)
    if k == 0:
        s = "{}{}".format(cap(r.choice(POS_ADJ + NEG_ADJ + MID_ADJ)), end(r, u, True))
    elif k == 1:
        s = "{} {}".format(r.choice(["Great", "Terrible", "Decent", "Perfect", "Awful", "Nice"]), r.choice(CATEGORIES[r.choice(list(CATEGORIES))]))
    elif k == 2:
        s = "{} stars{}".format(r.choice(["Five", "Four", "Three", "Two", "One", "5", "4", "3"]), end(r, u, True))
    elif k == 3:
        s = r.choice(["Does the job", "Not as pictured", "Love it", "Returned it", "Just okay",
                      "Better than expected", "Broke after a week", "A must-have", "Buy it",
                      "Skip this one", "Good value", "Meh", "Exactly what I needed"]) + end(r, u, True)
    elif k == 4:
        s = "{} for {}".format(cap(r.choice(POS_ADJ)), r.choice(["the price", "beginners", "travel", "kids", "everyday use", "gifts"]))
    else:
        s = "{}: {}".format(r.choice(BRANDS), r.choice(MID_ADJ + POS_ADJ))
    return u.spell(s)


# ---------------------------------------------------------------------------------------------
# General prose, numbers and punctuation.

def prose(r):
    k = r.randrange(14)
    subj, verb = r.choice(SUBJECTS), r.choice(PROSE_VERBS)
    adj, noun = r.choice(PROSE_ADJ), r.choice(NOUNS)
    if k == 0:
        return "{} {} the {} {} near {} on {}.".format(subj, verb, adj, noun, r.choice(CITIES), date(r))
    if k == 1:
        return "In {}, the {} had {} residents; by {} that number was {}.".format(r.randrange(1800, 1990), noun, "{:,}".format(r.randrange(200, 900000)), r.randrange(1990, 2025), "{:,}".format(r.randrange(200, 900000)))
    if k == 2:
        return "\"Where is the {}?\" asked {}. \"Past the {}, then left,\" said {}.".format(noun, r.choice(NAMES), r.choice(NOUNS), r.choice(NAMES))
    if k == 3:
        return "The meeting about {} starts at {} in room {}{}.".format(r.choice(TOPICS), clock(r), r.randrange(100, 500), r.choice(["", "A", "B", "C"]))
    if k == 4:
        return "{} said the {} would cost about {} and take {} months to finish.".format(subj, noun, price(r), r.randrange(2, 48))
    if k == 5:
        return "Temperatures reached {}°{} on {}, the {} day since {}.".format(r.randrange(-20, 45), r.choice(["C", "F"]), r.choice(DAYS), r.choice(["hottest", "coldest", "wettest", "windiest"]), r.randrange(1900, 2024))
    if k == 6:
        return "Step {}: {} the {} for {} minutes, then add {} {} of {}.".format(r.randrange(1, 12), r.choice(["stir", "bake", "simmer", "chill", "whisk", "rest"]), r.choice(["sauce", "dough", "batter", "soup", "mixture"]), r.randrange(2, 60), number(r), r.choice(["cups", "tablespoons", "grams", "teaspoons", "pinches"]), r.choice(["flour", "sugar", "salt", "butter", "milk", "rice", "cumin", "garlic"]))
    if k == 7:
        return "Call {}-{}-{} or write to {} {} Street, {} ({}).".format(r.randrange(200, 999), r.randrange(200, 999), "{:04d}".format(r.randrange(10000)), r.randrange(1, 9999), r.choice(["Oak", "Elm", "Main", "Mill", "Church", "High", "Park", "Lake"]), r.choice(CITIES), r.choice(["open daily", "closed Sundays", "by appointment", "weekdays only"]))
    if k == 8:
        return "About {} of the {} {} were {} — roughly {} in total.".format(number(r), adj, plural(noun), r.choice(["repaired", "sold", "counted", "lost", "replaced"]), number(r))
    if k == 9:
        return "{} {} {}; {} {} the {} {}.".format(subj, verb, "the " + noun, r.choice(SUBJECTS).lower(), r.choice(PROSE_VERBS), r.choice(PROSE_ADJ), r.choice(NOUNS))
    if k == 10:
        return "The {} ({}) was {} in {}, and {} it again in {}.".format(noun, r.choice(["see map", "now closed", "est. " + str(r.randrange(1700, 2000)), "pictured"]), verb, r.randrange(1700, 1990), r.choice(SUBJECTS).lower(), r.randrange(1990, 2025))
    if k == 11:
        return "Scores: {}–{}, {}–{}, and {}–{} after {} rounds.".format(r.randrange(30), r.randrange(30), r.randrange(30), r.randrange(30), r.randrange(30), r.randrange(30), r.randrange(2, 12))
    if k == 12:
        return "Why did the {} {} {}? Nobody knew, but {} had a theory.".format(adj, noun, r.choice(["close early", "move", "change hands", "go quiet"]), r.choice(NAMES))
    return "{} {} {}, {}, and {} {}.".format(cap(r.choice(["we packed", "she bought", "they found", "he carried", "I counted"])), number(r), plural(r.choice(NOUNS)), measure(r), r.choice(["a map", "two lanterns", "a notebook", "three apples"]), r.choice(["before dawn", "by noon", "at " + clock(r), "on " + date(r)]))


def numbers_line(r):
    k = r.randrange(6)
    if k == 0:
        return " ".join(number(r) for _ in range(r.randrange(3, 12)))
    if k == 1:
        return "Order #{}: {} x {} = {}".format(r.randrange(10000, 999999), r.randrange(1, 9), price(r), price(r))
    if k == 2:
        return "Total: {} (tax {}%), shipped {} via tracking no. {}{}.".format(price(r), r.randrange(0, 25), date(r), r.choice(["1Z", "TBA", "LX", "94"]), r.randrange(10 ** 8, 10 ** 10))
    if k == 3:
        return "{}, {}, {}... {}!".format(number(r), number(r), number(r), number(r))
    if k == 4:
        return "Version {}.{}.{} released {}; {} bugs fixed, {} open.".format(r.randrange(10), r.randrange(30), r.randrange(100), date(r), r.randrange(200), r.randrange(50))
    return "Q{} {}: revenue {} (+{}%), costs {} (-{}%).".format(r.randrange(1, 5), r.randrange(2000, 2031), price(r), r.randrange(1, 60), price(r), r.randrange(1, 30))


def punctuation_line(r):
    bits = ["(see below)", "[sic]", "e.g.", "i.e.", "etc.", "vs.", "Dr.", "Mr.", "Ms.", "St.",
            "a/b", "and/or", "#1", "@home", "50-50", "10:30", "3:1", "'quoted'", "\"quoted\"",
            "‘curly’", "“curly”", "—", "–", "…", "&", "*", "~", "{x}", "<tag>", "100%", "1st",
            "2nd", "3rd", "4th", "don't", "can't", "won't", "it's", "we're", "they'll", "I'd",
            "o'clock", "rock'n'roll", "well-known", "x-ray", "re-use", "café", "naïve", "résumé",
            "façade", "jalapeño", "déjà vu", "crème brûlée", "Zürich", "São Paulo", "Kraków"]
    return " ".join(r.choice(bits) for _ in range(r.randrange(4, 14)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=20260306)
    args = ap.parse_args()

    r = random.Random(args.seed)
    users = [User(r, i) for i in range(400)]
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for _ in range(args.lines):
            x = r.random()
            if x < 0.55:
                line = review(r, r.choice(users))
            elif x < 0.65:
                line = summary(r, r.choice(users))
            elif x < 0.88:
                line = " ".join(prose(r) if r.random() < 0.3 else free_sentence(r)
                                for _ in range(r.randrange(1, 5)))
            elif x < 0.95:
                line = numbers_line(r)
            else:
                line = punctuation_line(r)
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
