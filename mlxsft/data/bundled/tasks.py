"""The verifiable task types of the bundled dataset: what SFT teaches a small base model well.

Each task draws an instance (its operands), phrases it as a question and gives the one canonical answer. They
are the skills a pre-trained base model half-has and SFT turns into an assistant's behaviour: pull a field out
of a sentence, label a text, rewrite it, put it into a fixed format, answer a short fact, and stop right after
the answer. Arithmetic beyond small sums, calendars and letter counting are left out on purpose: a 135M-270M
model cannot learn them in a few minutes, so a table of them measures the model's size, not what SFT did.

``make_dataset.py`` mixes the tasks with the hand-written conversations; stdlib only, every draw from one
seeded ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Optional

Ops = tuple


@dataclass(frozen=True)
class Task:
    """One kind of verifiable question: how to draw operands, phrase them and answer them."""

    name: str
    category: str
    draw: Callable[[random.Random], Ops]
    fields: Callable[[Ops], dict[str, str]]
    answer: Callable[[Ops], str]
    prompts: tuple[str, ...]
    # What makes two instances the same question; default: the same text in every field and the same answer
    # (draws differing only in an operand the sentence does not use are one instance).
    key: Optional[Callable[[Ops], Hashable]] = None

    def identity(self, ops: Ops) -> Hashable:
        return self.key(ops) if self.key else (tuple(sorted(self.fields(ops).items())), self.answer(ops))


# ---------------------------------------------------------------------------------------------- word pools

NAMES = ("Maria", "Tom", "Aisha", "Kenji", "Lucas", "Sofia", "Omar", "Emma", "Ivan", "Priya", "Noah", "Lena",
         "Diego", "Hana", "Felix", "Zoe", "Ravi", "Clara", "Jonas", "Mei", "Samuel", "Nora", "Ahmed", "Julia",
         "Pedro", "Anna", "Yusuf", "Elena", "Marco", "Grace", "Tariq", "Ines", "Daniel", "Lucy", "Hugo", "Amira")
SURNAMES = ("Silva", "Chen", "Novak", "Okafor", "Berg", "Tanaka", "Rossi", "Khan", "Meyer", "Lopez", "Dubois",
            "Kowalski", "Haddad", "Larsen", "Costa", "Moreau")
CITIES = ("Paris", "Berlin", "Madrid", "Tokyo", "Cairo", "Lima", "Oslo", "Rome", "Dublin", "Seoul", "Toronto",
          "Sydney", "Vienna", "Prague", "Lisbon", "Athens", "Nairobi", "Mumbai", "Denver", "Boston", "Chicago",
          "Warsaw", "Helsinki", "Bangkok", "Istanbul", "Montreal", "Munich", "Milan", "Osaka", "Santiago")
DOMAINS = ("example.com", "mail.org", "company.net", "school.edu", "shop.io")
PRODUCTS = ("lamp", "kettle", "backpack", "keyboard", "chair", "blender", "jacket", "phone case", "toaster",
            "umbrella", "desk", "headset", "water bottle", "printer", "mattress", "camera", "vacuum", "watch")
OBJECTS = ("printer", "window", "bicycle", "sink", "laptop", "door", "heater", "clock", "fridge", "radio")
ITEMS = ("apples", "bread", "milk", "eggs", "rice", "cheese", "onions", "coffee", "butter", "tomatoes", "pasta",
         "lemons", "carrots", "honey", "beans", "yogurt", "potatoes", "tea", "oranges", "flour")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

KINDS = {
    "animal": ("dog", "cat", "horse", "lion", "tiger", "rabbit", "elephant", "sheep", "wolf", "bear", "monkey",
               "zebra", "giraffe", "fox", "deer", "goat", "camel", "dolphin", "owl", "eagle"),
    "fruit": ("apple", "banana", "cherry", "grape", "mango", "peach", "pear", "plum", "lemon", "orange", "kiwi",
              "melon", "apricot", "papaya", "lime", "fig", "pineapple", "strawberry", "coconut", "watermelon"),
    "vehicle": ("car", "bus", "train", "bicycle", "truck", "boat", "plane", "scooter", "tram", "van",
                "motorcycle", "helicopter", "ship", "taxi", "tractor", "subway", "ferry", "canoe", "jeep", "yacht"),
}
KIND_OF = {w: k for k, words in KINDS.items() for w in words}

# regular (+s), sibilant (+es), consonant + y (-> ies) and common irregular plurals
PLURALS = {
    "book": "books", "tree": "trees", "house": "houses", "car": "cars", "door": "doors", "cup": "cups",
    "girl": "girls", "river": "rivers", "pen": "pens", "shoe": "shoes", "bird": "birds", "road": "roads",
    "lamp": "lamps", "song": "songs", "hat": "hats", "table": "tables", "garden": "gardens", "friend": "friends",
    "box": "boxes", "bus": "buses", "dish": "dishes", "church": "churches", "glass": "glasses", "fox": "foxes",
    "watch": "watches", "brush": "brushes", "class": "classes", "kiss": "kisses", "city": "cities",
    "baby": "babies", "party": "parties", "story": "stories", "lady": "ladies", "berry": "berries",
    "puppy": "puppies", "country": "countries", "family": "families", "mouse": "mice", "child": "children",
    "foot": "feet", "tooth": "teeth", "man": "men", "woman": "women", "person": "people", "goose": "geese",
}
OPPOSITES = (("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("old", "young"),
             ("open", "closed"), ("light", "dark"), ("early", "late"), ("full", "empty"), ("hard", "soft"),
             ("rich", "poor"), ("strong", "weak"), ("tall", "short"), ("wet", "dry"), ("clean", "dirty"),
             ("loud", "quiet"), ("thick", "thin"), ("cheap", "expensive"), ("easy", "difficult"),
             ("true", "false"), ("up", "down"), ("inside", "outside"), ("first", "last"),
             ("win", "lose"), ("push", "pull"), ("buy", "sell"), ("arrive", "leave"), ("remember", "forget"),
             ("begin", "end"), ("safe", "dangerous"), ("friend", "enemy"), ("day", "night"),
             ("north", "south"), ("east", "west"), ("love", "hate"), ("always", "never"), ("near", "far"))
CAPITALS = (("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Germany", "Berlin"), ("Egypt", "Cairo"), ("Russia", "Moscow"), ("China", "Beijing"),
            ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Norway", "Oslo"),
            ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Austria", "Vienna"), ("Poland", "Warsaw"),
            ("Hungary", "Budapest"), ("Thailand", "Bangkok"), ("Kenya", "Nairobi"), ("Peru", "Lima"),
            ("Argentina", "Buenos Aires"), ("Mexico", "Mexico City"), ("Canada", "Ottawa"),
            ("Australia", "Canberra"), ("India", "New Delhi"), ("South Korea", "Seoul"), ("Turkey", "Ankara"),
            ("Denmark", "Copenhagen"), ("Belgium", "Brussels"), ("the Netherlands", "Amsterdam"),
            ("Switzerland", "Bern"), ("Cuba", "Havana"), ("Chile", "Santiago"), ("Colombia", "Bogota"),
            ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"), ("the Philippines", "Manila"), ("Iran", "Tehran"),
            ("Iraq", "Baghdad"), ("Ukraine", "Kyiv"), ("the Czech Republic", "Prague"), ("Romania", "Bucharest"),
            ("Brazil", "Brasilia"), ("Scotland", "Edinburgh"), ("England", "London"), ("Morocco", "Rabat"),
            ("Saudi Arabia", "Riyadh"), ("Nigeria", "Abuja"))
COLORS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown", "gray")
WORDS = ("green apple", "quiet river", "blue sky", "good morning", "happy birthday", "fresh bread", "open door",
         "cold water", "red car", "summer rain", "old friend", "big city", "little cat", "warm coffee",
         "new book", "dark night", "bright star", "soft pillow", "fast train", "small garden", "sweet tea",
         "heavy box", "clean room", "long road", "silver moon", "paper plane", "lucky day", "wooden chair",
         "thank you", "see you soon", "well done", "high school", "ice cream", "best wishes", "good luck",
         "full moon", "hot soup", "sunny beach", "tall tree", "wild horse")

# ---------------------------------------------------------------------------------------------- sentences


def _pick(rng: random.Random, pool: tuple) -> int:
    return rng.randrange(len(pool))


YEAR_SENTENCES = ("{name} moved to {city} in {year}.", "The new bridge in {city} was finished in {year}.",
                  "In {year}, {name} opened a small bakery in {city}.", "{name} was born in {city} in {year}.",
                  "The museum in {city} first opened its doors in {year}.",
                  "{name} started working as a nurse in {year}.")
PERSON_SENTENCES = ("{name} ordered three new chairs for the office.", "Yesterday {name} fixed the {object}.",
                    "The report was written by {name}.", "{name} will give a talk on Friday.",
                    "The {object} was repaired by {name} this morning.", "Please send the invoice to {name}.")
CITY_SENTENCES = ("The next meeting will take place in {city} on {weekday}.", "Our train to {city} leaves at noon.",
                  "{name} spent last summer in {city}.", "The company opened a second office in {city}.",
                  "We are flying to {city} on {weekday}.", "The festival in {city} starts next {weekday}.")
EMAIL_SENTENCES = ("You can reach {name} at {email} during office hours.",
                   "Send your questions to {email} before {weekday}.",
                   "For support, write to {email} and include your order number.",
                   "{name}'s new address is {email}.")
POSITIVE = ("I love this {p}. It works perfectly.", "The {p} arrived early and looks great.",
            "Best {p} I have ever bought, totally worth the money.", "Great quality {p}, I would buy it again.",
            "This {p} made my mornings so much easier. Highly recommended!",
            "Excellent {p}: sturdy, simple and exactly as described.")
NEGATIVE = ("The {p} broke after two days.", "Terrible {p}. It stopped working within a week.",
            "I want a refund, this {p} is awful.", "Very disappointed with the {p}, it feels cheap.",
            "The {p} arrived scratched and the seller never answered.",
            "Do not buy this {p}. It is noisy and badly made.")
STATEMENTS = ("{name} lives in {city}.", "The {object} in the kitchen is broken.", "{name} likes {item}.",
              "The shop closes at six on {weekday}.", "{name} is driving to {city} tomorrow.",
              "We need more {item} for the party.")
QUESTIONS = ("Does {name} live in {city}?", "Is the {object} in the kitchen broken?", "Does {name} like {item}?",
             "When does the shop close on {weekday}?", "Is {name} driving to {city} tomorrow?",
             "Do we need more {item} for the party?")
REPLACE_SENTENCES = ("The {a} car is parked outside.", "She painted the fence {a}.", "My {a} jacket is in the hall.",
                     "He bought a {a} umbrella yesterday.", "The walls of the room are {a}.",
                     "A {a} bird sat on the roof.")
JSON_SENTENCES = ("{name} lives in {city}.", "{name} is from {city}.", "{name} just moved to {city}.",
                  "{name} works in {city}.")
LIST_SENTENCES = ("I bought {a}, {b} and {c} at the market.", "Please get {a}, {b} and {c} on your way home.",
                  "We ran out of {a}, {b} and {c}.", "The recipe needs {a}, {b} and {c}.")


def _email(name: int, surname: int, domain: int) -> str:
    return f"{NAMES[name].lower()}.{SURNAMES[surname].lower()}@{DOMAINS[domain]}"


# ---------------------------------------------------------------------------------------------- extract

EXTRACT_YEAR = Task(
    name="extract_year", category="extract",
    draw=lambda rng: (_pick(rng, YEAR_SENTENCES), _pick(rng, NAMES), _pick(rng, CITIES), rng.randint(1950, 2024)),
    fields=lambda o: {"s": YEAR_SENTENCES[o[0]].format(name=NAMES[o[1]], city=CITIES[o[2]], year=o[3])},
    answer=lambda o: str(o[3]),
    prompts=("What year is mentioned in this sentence? {s}", "Extract the year: {s}",
             "Give only the year from this text.\n\n{s}"),
)
EXTRACT_PERSON = Task(
    name="extract_person", category="extract",
    draw=lambda rng: (_pick(rng, PERSON_SENTENCES), _pick(rng, NAMES), _pick(rng, OBJECTS)),
    fields=lambda o: {"s": PERSON_SENTENCES[o[0]].format(name=NAMES[o[1]], object=OBJECTS[o[2]])},
    answer=lambda o: NAMES[o[1]],
    prompts=("Who is mentioned in this sentence? {s}", "Extract the person's name: {s}",
             "Which person does this text talk about?\n\n{s}"),
)
EXTRACT_CITY = Task(
    name="extract_city", category="extract",
    draw=lambda rng: (_pick(rng, CITY_SENTENCES), _pick(rng, CITIES), _pick(rng, NAMES), _pick(rng, WEEKDAYS)),
    fields=lambda o: {"s": CITY_SENTENCES[o[0]].format(city=CITIES[o[1]], name=NAMES[o[2]], weekday=WEEKDAYS[o[3]])},
    answer=lambda o: CITIES[o[1]],
    prompts=("Which city is mentioned? {s}", "Extract the city name from this sentence: {s}",
             "Name the city in this text.\n\n{s}"),
)
EXTRACT_EMAIL = Task(
    name="extract_email", category="extract",
    draw=lambda rng: (_pick(rng, EMAIL_SENTENCES), _pick(rng, NAMES), _pick(rng, SURNAMES), _pick(rng, DOMAINS),
                      _pick(rng, WEEKDAYS)),
    fields=lambda o: {"s": EMAIL_SENTENCES[o[0]].format(name=NAMES[o[1]], email=_email(o[1], o[2], o[3]),
                                                        weekday=WEEKDAYS[o[4]])},
    answer=lambda o: _email(o[1], o[2], o[3]),
    prompts=("Extract the email address: {s}", "What email address appears in this text? {s}",
             "Copy the email address out of this message.\n\n{s}"),
)

# ---------------------------------------------------------------------------------------------- classify

SENTIMENT = Task(
    name="sentiment", category="classify",
    draw=lambda rng: (rng.random() < 0.5, rng.randrange(6), _pick(rng, PRODUCTS)),
    fields=lambda o: {"r": (POSITIVE if o[0] else NEGATIVE)[o[1]].format(p=PRODUCTS[o[2]])},
    answer=lambda o: "positive" if o[0] else "negative",
    prompts=("Is this review positive or negative? {r}", "Classify the sentiment of this review as positive or "
             "negative: {r}", "Review: {r}\nSentiment (positive or negative)?"),
)
KIND = Task(
    name="kind", category="classify",
    draw=lambda rng: (rng.choice(sorted(KIND_OF)),),
    fields=lambda o: {"w": o[0], "a": "an" if o[0][0] in "aeiou" else "a"},
    answer=lambda o: KIND_OF[o[0]],
    prompts=("Is {a} {w} an animal, a fruit or a vehicle?", "Classify '{w}' as animal, fruit or vehicle.",
             "Animal, fruit or vehicle: {w}?"),
)
def _sentence(o: Ops) -> str:
    return (QUESTIONS if o[0] else STATEMENTS)[o[1]].format(
        name=NAMES[o[2]], city=CITIES[o[3]], object=OBJECTS[o[4]], item=ITEMS[o[5]], weekday=WEEKDAYS[o[6]])


SENTENCE_TYPE = Task(
    name="sentence_type", category="classify",
    draw=lambda rng: (rng.random() < 0.5, rng.randrange(6), _pick(rng, NAMES), _pick(rng, CITIES),
                      _pick(rng, OBJECTS), _pick(rng, ITEMS), _pick(rng, WEEKDAYS)),
    fields=lambda o: {"s": _sentence(o)},
    answer=lambda o: "question" if o[0] else "statement",
    prompts=("Is this sentence a question or a statement? {s}", "Question or statement: {s}",
             "Label this sentence as a question or a statement.\n\n{s}"),
)

# ---------------------------------------------------------------------------------------------- rewrite

UPPER = Task(
    name="upper", category="rewrite", draw=lambda rng: (rng.choice(WORDS),),
    fields=lambda o: {"w": o[0]}, answer=lambda o: o[0].upper(),
    prompts=("Write in capital letters: {w}", "Convert to uppercase: {w}", "Rewrite '{w}' in all caps."),
)
PLURAL = Task(
    name="plural", category="rewrite", draw=lambda rng: (rng.choice(sorted(PLURALS)),),
    fields=lambda o: {"w": o[0]}, answer=lambda o: PLURALS[o[0]],
    prompts=("What is the plural of '{w}'?", "Give the plural form of the word {w}.", "Plural of {w}?"),
)
OPPOSITE = Task(
    name="opposite", category="rewrite",
    draw=lambda rng: (rng.randrange(len(OPPOSITES)), rng.random() < 0.3),
    fields=lambda o: {"w": OPPOSITES[o[0]][1 if o[1] else 0]},
    answer=lambda o: OPPOSITES[o[0]][0 if o[1] else 1],
    prompts=("What is the opposite of '{w}'?", "Give the opposite of the word {w}.", "Antonym of {w}?"),
    key=lambda o: o[0],  # "hot -> cold" and "cold -> hot" are one fact
)
REPLACE = Task(
    name="replace", category="rewrite",
    draw=lambda rng: (_pick(rng, REPLACE_SENTENCES), *rng.sample(range(len(COLORS)), 2)),
    fields=lambda o: {"s": REPLACE_SENTENCES[o[0]].format(a=COLORS[o[1]]), "a": COLORS[o[1]], "b": COLORS[o[2]]},
    answer=lambda o: REPLACE_SENTENCES[o[0]].format(a=COLORS[o[2]]),
    prompts=("Replace '{a}' with '{b}' in this sentence: {s}", "Change the word {a} to {b}: {s}",
             "Rewrite the sentence with {b} instead of {a}.\n\n{s}"),
)

# ---------------------------------------------------------------------------------------------- format

TO_JSON = Task(
    name="to_json", category="format",
    draw=lambda rng: (_pick(rng, JSON_SENTENCES), _pick(rng, NAMES), _pick(rng, CITIES)),
    fields=lambda o: {"s": JSON_SENTENCES[o[0]].format(name=NAMES[o[1]], city=CITIES[o[2]])},
    answer=lambda o: '{"name": "%s", "city": "%s"}' % (NAMES[o[1]], CITIES[o[2]]),
    prompts=("Return a JSON object with the keys name and city: {s}", "Turn this into JSON with name and city: {s}",
             "Extract name and city as JSON.\n\n{s}"),
    key=lambda o: o[1:],
)
TO_LIST = Task(
    name="to_list", category="format",
    draw=lambda rng: (_pick(rng, LIST_SENTENCES), *rng.sample(range(len(ITEMS)), 3)),
    fields=lambda o: {"s": LIST_SENTENCES[o[0]].format(a=ITEMS[o[1]], b=ITEMS[o[2]], c=ITEMS[o[3]])},
    answer=lambda o: ", ".join(ITEMS[i] for i in o[1:]),
    prompts=("List the items in this sentence, separated by commas: {s}",
             "Write the things mentioned here as a comma-separated list: {s}",
             "Give the items as a comma-separated list.\n\n{s}"),
    key=lambda o: o[1:],
)
ISO_DATE = Task(
    name="iso_date", category="format",
    draw=lambda rng: (rng.randint(1, 12), rng.randint(1, 28), rng.randint(1990, 2030)),
    fields=lambda o: {"d": f"{MONTHS[o[0] - 1]} {o[1]}, {o[2]}"},
    answer=lambda o: f"{o[2]:04d}-{o[0]:02d}-{o[1]:02d}",
    prompts=("Write {d} in the format YYYY-MM-DD.", "Convert the date {d} to ISO format (YYYY-MM-DD).",
             "{d} as YYYY-MM-DD?"),
)

# ---------------------------------------------------------------------------------------------- knowledge

CAPITAL = Task(
    name="capital", category="knowledge", draw=lambda rng: (rng.randrange(len(CAPITALS)),),
    fields=lambda o: {"c": CAPITALS[o[0]][0]}, answer=lambda o: CAPITALS[o[0]][1],
    prompts=("What is the capital of {c}?", "Name the capital city of {c}.", "Capital of {c}?"),
)
ADD = Task(
    name="add", category="knowledge", draw=lambda rng: (rng.randint(1, 20), rng.randint(1, 20)),
    fields=lambda o: {"a": str(o[0]), "b": str(o[1])}, answer=lambda o: str(o[0] + o[1]),
    prompts=("What is {a} + {b}?", "Add {a} and {b}.", "{a} plus {b} equals?"),
    key=lambda o: tuple(sorted(o)),  # 3 + 5 and 5 + 3 are one fact
)

TASKS: tuple[Task, ...] = (EXTRACT_YEAR, EXTRACT_PERSON, EXTRACT_CITY, EXTRACT_EMAIL, SENTIMENT, KIND, SENTENCE_TYPE,
                           UPPER, PLURAL, OPPOSITE, REPLACE, TO_JSON, TO_LIST, ISO_DATE, CAPITAL, ADD)


class Sampler:
    """Draws instances of tasks, each (task, operands) at most once across every split, phrased so that no
    question is a prompt asked elsewhere (``taken``: the hand-written and open questions)."""

    def __init__(self, rng: random.Random, taken: set[str] = frozenset()) -> None:
        self.rng = rng
        self.used: set[tuple[str, Hashable]] = set()
        self.taken = set(taken)

    def draw(self, task: Task) -> tuple[Ops, str]:
        """(operands, question) of a fresh instance."""
        for _ in range(10_000):
            ops = task.draw(self.rng)
            key = (task.name, task.identity(ops))
            question = self.rng.choice(task.prompts).format(**task.fields(ops))
            if key not in self.used and question not in self.taken:
                self.used.add(key)
                self.taken.add(question)
                return ops, question
        raise RuntimeError(f"ran out of fresh instances for {task.name}")
