from applications.translation import builtin_data as bd


def test_number_words():
    cases = {1: ("one", "eins"), 21: ("twenty-one", "einundzwanzig"),
             101: ("one hundred one", "einhunderteins"),
             345: ("three hundred forty-five", "dreihundertfünfundvierzig"),
             2017: ("two thousand seventeen", "zweitausendsiebzehn")}
    for n, (english, german) in cases.items():
        assert (bd.english_number(n), bd.german_number(n)) == (english, german)


def test_ordinals_in_dates():
    assert bd.german_ordinal_dative(3) == "dritten"
    assert bd.german_ordinal_dative(6) == "sechsten"
    assert bd.german_ordinal_dative(21) == "einundzwanzigsten"
    assert bd.english_ordinal(22) == "twenty-second"


def test_agreement_and_reordering_are_in_the_data():
    pairs = dict(sum(bd.generate(3000, seed=1).values(), []))
    singular = {en: de for en, de in pairs.items() if en.startswith("one ") and len(en.split()) == 3}
    assert any(de.startswith("eine ") and de.split()[1].endswith("e") for de in singular.values())
    assert any(de.split()[1].endswith("er") for de in singular.values())  # ein großer Hund
    assert any(en.startswith("on ") and de.startswith("am ") for en, de in pairs.items())


def test_splits_are_disjoint_and_reproducible():
    splits = bd.generate(2000, seed=3)
    sources = {split: {s for s, _ in pairs} for split, pairs in splits.items()}
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["val"]
    assert splits == bd.generate(2000, seed=3)
    assert len(sources["test"]) > 20 and len(sources["val"]) > 20
