"""The built-in corpus: English number, counting and date phrases into German.

Generated with a seed, nothing downloaded. The task has the structure a
Transformer has to learn: reordering ("twenty-one" -> "einundzwanzig",
"on March third" -> "am dritten März"), agreement of article and adjective
with the noun's gender and number ("one big cat" -> "eine große Katze"), and
variable lengths.
"""

import hashlib
import random

_EN_UNITS = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
             "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
             "eighteen", "nineteen"]
_EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_DE_UNITS = ["", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
             "zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn",
             "achtzehn", "neunzehn"]
_DE_TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig",
            "neunzig"]

_EN_ORDINAL_UNITS = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh",
                     "eighth", "ninth", "tenth", "eleventh", "twelfth", "thirteenth",
                     "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
                     "nineteenth"]
_EN_ORDINAL_TENS = {20: "twentieth", 30: "thirtieth"}
_DE_ORDINAL_IRREGULAR = {1: "ersten", 3: "dritten", 7: "siebten", 8: "achten"}

_MONTHS = [("January", "Januar"), ("February", "Februar"), ("March", "März"),
           ("April", "April"), ("May", "Mai"), ("June", "Juni"), ("July", "Juli"),
           ("August", "August"), ("September", "September"), ("October", "Oktober"),
           ("November", "November"), ("December", "Dezember")]

# English singular, plural; German singular, plural, gender.
_NOUNS = [("dog", "dogs", "Hund", "Hunde", "m"), ("cat", "cats", "Katze", "Katzen", "f"),
          ("house", "houses", "Haus", "Häuser", "n"), ("book", "books", "Buch", "Bücher", "n"),
          ("car", "cars", "Auto", "Autos", "n"), ("apple", "apples", "Apfel", "Äpfel", "m"),
          ("bird", "birds", "Vogel", "Vögel", "m"), ("flower", "flowers", "Blume", "Blumen", "f"),
          ("child", "children", "Kind", "Kinder", "n"), ("tree", "trees", "Baum", "Bäume", "m"),
          ("chair", "chairs", "Stuhl", "Stühle", "m"), ("city", "cities", "Stadt", "Städte", "f")]
_ADJECTIVES = [("big", "groß"), ("small", "klein"), ("red", "rot"), ("old", "alt"),
               ("new", "neu"), ("black", "schwarz"), ("white", "weiß"), ("young", "jung")]
_ARTICLE = {"m": "ein", "f": "eine", "n": "ein"}
_ADJECTIVE_ENDING = {"m": "er", "f": "e", "n": "es", "plural": "e"}


def english_number(n):
    """1 <= n <= 9999, American style: 345 -> 'three hundred forty-five'."""
    parts = []
    if n >= 1000:
        parts.append(f"{_EN_UNITS[n // 1000]} thousand")
        n %= 1000
    if n >= 100:
        parts.append(f"{_EN_UNITS[n // 100]} hundred")
        n %= 100
    if n >= 20:
        parts.append(_EN_TENS[n // 10] + (f"-{_EN_UNITS[n % 10]}" if n % 10 else ""))
    elif n:
        parts.append(_EN_UNITS[n])
    return " ".join(parts)


def german_number(n):
    """1 <= n <= 9999 as one word: 345 -> 'dreihundertfünfundvierzig'."""
    word = ""
    if n >= 1000:
        word += ("ein" if n // 1000 == 1 else _DE_UNITS[n // 1000]) + "tausend"
        n %= 1000
    if n >= 100:
        word += ("ein" if n // 100 == 1 else _DE_UNITS[n // 100]) + "hundert"
        n %= 100
    if n >= 20:
        unit = n % 10
        word += (("ein" if unit == 1 else _DE_UNITS[unit]) + "und" if unit else "") + _DE_TENS[n // 10]
    elif n:
        word += _DE_UNITS[n]
    return word


def english_ordinal(day):
    if day < 20:
        return _EN_ORDINAL_UNITS[day]
    if day % 10 == 0:
        return _EN_ORDINAL_TENS[day]
    return f"{_EN_TENS[day // 10]}-{_EN_ORDINAL_UNITS[day % 10]}"


def german_ordinal_dative(day):
    """The form after 'am': 21 -> 'einundzwanzigsten'."""
    if day in _DE_ORDINAL_IRREGULAR:
        return _DE_ORDINAL_IRREGULAR[day]
    if day < 20:
        return german_number(day) + "ten"
    return german_number(day) + "sten"


def _number_pair(rng):
    n = rng.choice([rng.randint(1, 99), rng.randint(100, 999), rng.randint(1000, 9999)])
    return english_number(n), german_number(n)


def _counting_pair(rng):
    en_singular, en_plural, de_singular, de_plural, gender = rng.choice(_NOUNS)
    n = rng.choice([1, 1, rng.randint(2, 20), rng.randint(2, 999)])
    while n > 1 and n % 100 == 1:  # "hunderteins Hunde" is not idiomatic German
        n = rng.randint(2, 999)
    adjective = rng.choice([None, *_ADJECTIVES])
    if n == 1:
        english = ["one"]
        german = [_ARTICLE[gender]]
        ending, en_noun, de_noun = _ADJECTIVE_ENDING[gender], en_singular, de_singular
    else:
        english, german = [english_number(n)], [german_number(n)]
        ending, en_noun, de_noun = _ADJECTIVE_ENDING["plural"], en_plural, de_plural
    if adjective:
        english.append(adjective[0])
        german.append(adjective[1] + ending)
    return " ".join(english + [en_noun]), " ".join(german + [de_noun])


def _date_pair(rng):
    month_en, month_de = rng.choice(_MONTHS)
    day = rng.randint(1, 31)
    if rng.random() < 0.5:
        english = f"on the {english_ordinal(day)} of {month_en}"
    else:
        english = f"on {month_en} {english_ordinal(day)}"
    return english, f"am {german_ordinal_dative(day)} {month_de}"


def _split_of(source, fractions):
    """A stable split from the source's hash, so a sentence is in one split only."""
    value = int(hashlib.md5(source.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if value < fractions[0] else "val" if value < fractions[0] + fractions[1] else "train"


def generate(num_examples=20000, seed=0, val_fraction=0.04, test_fraction=0.04):
    """{"train"|"val"|"test": [(english, german), ...]} of distinct pairs."""
    rng = random.Random(seed)
    makers = [_number_pair] * 4 + [_counting_pair] * 4 + [_date_pair] * 2
    seen, splits = set(), {"train": [], "val": [], "test": []}
    attempts = 0
    while len(seen) < num_examples and attempts < num_examples * 20:
        attempts += 1
        english, german = rng.choice(makers)(rng)
        if english in seen:
            continue
        seen.add(english)
        splits[_split_of(english, (test_fraction, val_fraction))].append((english, german))
    return splits
