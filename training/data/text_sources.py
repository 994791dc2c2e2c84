"""Sentences to synthesize: fortune cookies, and templates filled with faker entities.

Everything is offline and deterministic from a seed. Numbers are spelled out
(see spoken.py) so the label is exactly what the voice says. Template sentences
carry their entities (names, companies, places) as hotwords, which the context
SFT stage uses for biasing lists.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from faker import Faker

from . import spoken
from .splits import split_key

FORTUNE_DIR = Path("/usr/share/games/fortunes")
# Code, ASCII art, IRC logs, and files that are mostly not prose.
FORTUNE_FILES_SKIPPED = frozenset({"ascii-art", "perl", "knghtbrd", "translate-me", "debian", "linuxcookie", "zippy"})

MIN_WORDS, MAX_WORDS = 4, 30


@dataclass(frozen=True)
class Sentence:
    text: str
    source: str  # "fortune" or "template"
    hotwords: tuple[str, ...] = ()


# --- fortunes ------------------------------------------------------------------------------

_ATTRIBUTION = re.compile(r"^\s*--")
# Characters whose reading is engine-dependent or that mark non-prose (code, markup, lists).
_UNSAFE = re.compile(r"[^A-Za-z .,;:!?'\"()-]|--|\b[A-Za-z]\.[A-Za-z]\.|\b(?:etc|vs|St|Jr|Sr|No|Ms|Prof|Gen|Col|Lt|Capt|Sgt|Rev|Mt|Ave|Inc|Ltd|Co)\.")
_SPEAKER_LABEL = re.compile(r"(?:^|\s)[A-Z][\w]*:")
_SENTENCE_END = re.compile(r"[.!?][\"')]?(?:\s+|$)")


def clean_fortune(cookie: str) -> str | None:
    """One cookie → a speakable sentence or two, or None if it is not one.

    Keeps cookies of 4–30 words with at most two sentences, no attribution line,
    no indented lines (dialogue, verse), no digits and no symbols a TTS engine
    would read its own way.
    """
    lines = []
    for line in cookie.splitlines():
        if _ATTRIBUTION.match(line):
            break  # the attribution and anything after it
        lines.append(line)
    if any(line[:1].isspace() for line in lines if line.strip()):
        return None
    text = " ".join(" ".join(lines).split())
    if not text or _UNSAFE.search(text) or _SPEAKER_LABEL.search(text):
        return None
    if text.count('"') % 2 or text.count("(") != text.count(")"):
        return None
    if not text[0].isupper() or not re.search(r"[.!?][\"')]?$", text):
        return None
    if not MIN_WORDS <= len(text.split()) <= MAX_WORDS or len(_SENTENCE_END.findall(text)) > 2:
        return None
    return text


def fortune_sentences(root: str | Path = FORTUNE_DIR) -> list[Sentence]:
    """All usable fortunes, in a stable order, without duplicates (by split key)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No fortune files in {root}; install the Debian package 'fortunes'.")
    sentences, seen = [], set()
    for path in sorted(root.iterdir()):
        if path.suffix or not path.is_file() or path.name in FORTUNE_FILES_SKIPPED:
            continue  # .dat indexes, .u8 links
        for cookie in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            text = clean_fortune(cookie)
            if text is not None and split_key(text) not in seen:
                seen.add(split_key(text))
                sentences.append(Sentence(text, "fortune"))
    return sentences


# --- template sentences --------------------------------------------------------------------

NAME_LOCALES = ("en_US", "en_GB", "en_IN", "en_IE", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "sv_SE", "pl_PL", "tr_TR", "pt_BR")
# More spelling patterns for the name-dense splits (tts-names, dev-names). Each folds to plain ASCII without losing
# letters (not da_DK: "Øyvind" folds to "yvind") and draws the same names whatever PYTHONHASHSEED is.
EXTRA_NAME_LOCALES = ("fi_FI", "cs_CZ", "hu_HU", "ro_RO", "no_NO", "hr_HR", "sl_SI", "lv_LV", "lt_LT", "et_EE",
                      "en_AU", "en_NG", "yo_NG", "zu_ZA", "sw", "tw_GH", "ga_IE", "id_ID", "de_AT", "fr_CA",
                      "es_MX", "pt_PT", "uz_UZ")
# Not it_IT: its city list is built from a set, so its order (and a seeded draw) changes
# with PYTHONHASHSEED, and the corpus would differ from run to run.
CITY_LOCALES = ("en_IN", "de_DE", "es_ES", "nl_NL", "sv_SE", "pl_PL")
KNOWN_ORGANIZATIONS = (
    "Novartis", "Siemens", "Deloitte", "Accenture", "Unilever", "Nestle", "Roche", "Pfizer", "Infosys", "Wipro",
    "Tata Consultancy Services", "Samsung", "Toyota", "Volkswagen", "Airbus", "Boeing", "Ericsson", "Nokia",
    "Philips", "Bosch", "Shell", "Vodafone", "Reuters", "the BBC", "the World Bank", "the United Nations",
    "the World Health Organization", "Oxfam", "Medecins Sans Frontieres", "Stanford", "Oxford University",
    "the Max Planck Institute", "Mitsubishi", "Hyundai", "Salesforce", "Atlassian", "Spotify", "Zalando",
)
KNOWN_CITIES = (
    "Lagos", "Nairobi", "Accra", "Johannesburg", "Cairo", "Istanbul", "Tehran", "Karachi", "Dhaka", "Kathmandu",
    "Colombo", "Jakarta", "Manila", "Hanoi", "Bangkok", "Kuala Lumpur", "Singapore", "Shenzhen", "Chengdu",
    "Osaka", "Busan", "Auckland", "Brisbane", "Vancouver", "Montreal", "Toronto", "Chicago", "Houston", "Denver",
    "Seattle", "Boston", "Atlanta", "Guadalajara", "Bogota", "Lima", "Santiago", "Montevideo", "Sao Paulo",
    "Reykjavik", "Helsinki", "Tallinn", "Krakow", "Ljubljana", "Porto", "Seville", "Marseille", "Rotterdam",
    "Edinburgh", "Cardiff", "Belfast", "Galway", "Zurich", "Geneva", "Vienna", "Prague", "Budapest", "Athens",
)
COMPANY_SUFFIXES = ("Group", "Labs", "Systems", "Partners", "Holdings", "Technologies", "Consulting", "Analytics",
                    "Logistics", "Health", "Energy", "Capital", "Media", "Foods", "Robotics", "Pharma")
# No "Ms.": espeak-ng, Piper and flite all read it as the letters "M S".
TITLES = {"male": ("Dr.", "Mr.", "Professor"), "female": ("Dr.", "Mrs.", "Professor")}

# {slot} names are filled by _Slots; a template is one utterance of a meeting,
# interview, podcast, call or news item.
TEMPLATES = (
    "Our next speaker is {titled} from {company}.",
    "Let me introduce {titled}, head of research at {company}.",
    "Welcome back to the show. My guest today is {person}.",
    "Thank you, {first}. Let's move on to the budget for {year}.",
    "The meeting with {company} is scheduled for {weekday}, {date}, at {time}.",
    "Revenue grew by {percent} in the {quarter} quarter.",
    "{person} joined {company} as {a_job} in {year}.",
    "I grew up in {city}, and I moved to {country} when I was {small}.",
    "We have {count} participants registered from {country} this year.",
    "Please send the slides to {first} before {time} tomorrow.",
    "So, {first}, tell us how you ended up working at {company}.",
    "According to {person}, the contract is worth {money}.",
    "The flight to {city} leaves at {time} on {date}.",
    "{titled} will chair the session on {weekday} afternoon.",
    "The minutes from the {date} meeting were approved without changes.",
    "Our office in {city} now has {count} employees.",
    "That was in {month} {year}, right after the merger with {company}.",
    "Can everyone hear me? {first}, I think you're on mute.",
    "Action item: {first} will follow up with {company} by {weekday}.",
    "The interview was recorded in {city} on {date}, {year}.",
    "{person} asked whether the deadline could move to the {ordinal} of {month}.",
    "I'd like to thank {person} and the whole team at {company}.",
    "My name is {person}, and I work as {a_job} in {city}.",
    "We spoke to {titled}, who has studied this problem for {small} years.",
    "The shipment from {city} arrived {small} days late.",
    "The next quarterly review is on {weekday}, the {ordinal} of {month}.",
    "{company} reported a loss of {money} last year.",
    "About {percent} of the people we surveyed in {city} agreed.",
    "Could you repeat that, {first}? The line from {city} is breaking up.",
    "I'm calling from {company} about your order from {date}.",
    "The keynote by {titled} starts at {time} in hall {letter}.",
    "Before we start, a quick reminder that {first} is taking notes today.",
    "{person} from {company} has joined the call.",
    "Between {year_span}, the team grew from {small} to {count} people.",
    "When did you first meet {person}?",
    "Is {first} still leading the project in {city}?",
    "The committee, chaired by {titled}, meets every {weekday}.",
    "The new plant near {city} will cost about {money}.",
    "Sorry, I have a hard stop at {time}. Can we continue on {weekday}?",
    "You mentioned {company} earlier. How did that partnership start?",
    "Last {month}, {person} gave a talk about our work in {country}.",
    "Let's hear from {first} first, and then {first2}.",
    "The panel includes {person}, {person2} and {titled}.",
    "This is {person}, reporting live from {city}.",
)
_SLOT = re.compile(r"\{(\w+)\}")


def ascii_fold(text: str) -> str:
    """ "Nyström" → "Nystrom": every engine here reads plain ASCII; accented letters vary."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _plain_word(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z' -]*[A-Za-z]", text))


class _Slots:
    """Fills template slots from one seeded random stream; each fill is (spoken text, hotword or None)."""

    def __init__(self, rng: random.Random, name_locales: tuple[str, ...] = NAME_LOCALES):
        self.rng = rng
        self.name_fakers = [self._faker(locale) for locale in name_locales]
        self.city_fakers = [self._faker(locale) for locale in CITY_LOCALES]
        self.en = self._faker("en_US")

    def _faker(self, locale: str) -> Faker:
        faker = Faker(locale)
        faker.seed_instance(self.rng.getrandbits(32))
        return faker

    def _draw(self, make, what: str) -> str:
        for _ in range(50):
            value = ascii_fold(make()).strip()
            if _plain_word(value):
                return value
        raise RuntimeError(f"Faker gave no plain-ASCII {what} in 50 tries.")

    def first(self) -> str:
        return self._draw(self.rng.choice(self.name_fakers).first_name, "first name")

    def person(self, gender: str | None = None) -> str:
        faker = self.rng.choice(self.name_fakers)
        first_name = {None: faker.first_name, "male": faker.first_name_male, "female": faker.first_name_female}[gender]
        return f"{self._draw(first_name, 'first name')} {self._draw(faker.last_name, 'last name')}"

    def company(self) -> str:
        kind = self.rng.random()
        if kind < 0.3:
            return self.rng.choice(KNOWN_ORGANIZATIONS)
        last = self._draw(self.rng.choice(self.name_fakers).last_name, "last name")
        if kind < 0.75:
            return f"{last} {self.rng.choice(COMPANY_SUFFIXES)}"
        other = self._draw(self.rng.choice(self.name_fakers).last_name, "last name")
        return f"{last} and {other}"

    def city(self) -> str:
        if self.rng.random() < 0.4:
            return self.rng.choice(KNOWN_CITIES)
        return self._draw(self.rng.choice(self.city_fakers).city, "city")

    def fill(self, slot: str) -> tuple[str, str | None]:
        rng = self.rng
        if slot in ("person", "person2"):
            name = self.person()
            return name, name
        if slot in ("first", "first2"):
            name = self.first()
            return name, name
        if slot == "titled":
            gender = rng.choice(("male", "female"))
            name = self.person(gender)
            return f"{rng.choice(TITLES[gender])} {name}", name
        if slot == "company":
            name = self.company()
            return name, name.removeprefix("the ")
        if slot == "city":
            name = self.city()
            return name, name
        if slot == "country":
            return self._draw(self.en.country, "country"), None
        if slot == "a_job":
            job = self._draw(self.en.job, "job").lower()
            return f"{'an' if job[0] in 'aeiou' else 'a'} {job}", None
        if slot == "year":
            return spoken.year(rng.randint(1950, 2030)), None
        if slot == "year_span":
            start = rng.randint(1950, 2020)
            return f"{spoken.year(start)} and {spoken.year(start + rng.randint(2, 10))}", None
        if slot == "quarter":
            return spoken.ordinal(rng.randint(1, 4)), None
        if slot == "date":
            return f"{rng.choice(spoken.MONTHS)} {spoken.ordinal(rng.randint(1, 28))}", None
        if slot == "month":
            return rng.choice(spoken.MONTHS), None
        if slot == "weekday":
            return rng.choice(spoken.WEEKDAYS), None
        if slot == "time":
            return spoken.clock_time(rng.randint(1, 12), rng.choice((0, 0, 5, 15, 30, 45, rng.randint(1, 59)))), None
        if slot == "ordinal":
            return spoken.ordinal(rng.randint(1, 28)), None
        if slot == "small":
            return spoken.cardinal(rng.randint(2, 40)), None
        if slot == "count":
            return spoken.cardinal(rng.choice((rng.randint(12, 99), rng.randint(100, 999), rng.randint(1000, 20000)))), None
        if slot == "money":
            amount = rng.choice((rng.randint(2, 999), rng.randint(1, 99) * 1000))
            unit = rng.choice(("dollars", "euros", "pounds", "thousand dollars", "million euros", "million dollars"))
            return spoken.money(amount if "illion" not in unit and "thousand" not in unit else rng.randint(2, 900), unit), None
        if slot == "percent":
            return spoken.percent(rng.randint(2, 95)), None
        if slot == "letter":
            return rng.choice("ABCDEF"), None
        raise KeyError(f"Unknown template slot {{{slot}}}.")


def template_sentence(template: str, slots: _Slots) -> Sentence:
    hotwords: list[str] = []

    def substitute(match: re.Match) -> str:
        text, hotword = slots.fill(match.group(1))
        if hotword and hotword not in hotwords:
            hotwords.append(hotword)
        return text

    text = _SLOT.sub(substitute, template)
    return Sentence(text[0].upper() + text[1:], "template", tuple(hotwords))


def sentence_stream(seed: int, fortune_share: float = 0.4, fortune_dir: str | Path = FORTUNE_DIR,
                    name_locales: tuple[str, ...] = NAME_LOCALES, stream: str = "") -> Iterator[Sentence]:
    """An endless, seeded stream of distinct sentences: shuffled fortunes mixed with
    template sentences; when the fortunes run out, templates only. A different
    `stream` name gives an independent stream from the same seed."""
    rng = random.Random(f"{stream}sentences/{seed}")
    fortunes = fortune_sentences(fortune_dir) if fortune_share > 0 else []
    rng.shuffle(fortunes)
    slots = _Slots(random.Random(f"{stream}slots/{seed}"), name_locales)
    seen: set[str] = set()
    next_fortune = 0
    while True:
        if next_fortune < len(fortunes) and rng.random() < fortune_share:
            sentence = fortunes[next_fortune]
            next_fortune += 1
        else:
            sentence = template_sentence(rng.choice(TEMPLATES), slots)
        key = split_key(sentence.text)
        if key not in seen:
            seen.add(key)
            yield sentence
