"""CCL's hard negatives (Eq. 8): only the dish phrase of a target changes, for another dish of the corpus; determiners,
pronouns and the rest of the sentence stay. Checked on hand-written texts, on every sentence template of the test
world, and on real Google Maps reviews (skipped when that folder is absent)."""
import json
import random
import re

import pytest
from conftest import REAL_DATA

from showcase.data.world import ADJECTIVES, DISH_TEMPLATES, DISHES, FILLERS
from showcase.generation.entities import EntitySwapper, FoodLexicon

CORPUS = [
    "I like the sushi.",
    "The burger was great and the fries were crispy.",
    "We ordered the miso ramen, which was rich.",
    "My pad thai came out spicy.",
    "Parking was easy to find.",
    "The service was slow but it was worth it.",
    "Wow!",
]
EXPECTED = {  # the dish phrases a careful reader marks
    "I like the sushi.": ["sushi"],
    "The burger was great and the fries were crispy.": ["burger", "fries"],
    "We ordered the miso ramen, which was rich.": ["miso ramen"],
    "My pad thai came out spicy.": ["pad thai"],
}
needs_wordnet = pytest.mark.skipif(FoodLexicon().wordnet is None, reason="WordNet not installed (wordnet-base)")


@pytest.fixture(scope="module")
def swapper(tmp_path_factory):
    return EntitySwapper.fit(CORPUS, cache_dir=tmp_path_factory.mktemp("dishes"))


def _outside(text: str, spans) -> str:
    """The text with each span replaced by a placeholder: what a swap must keep."""
    pattern, last = "", 0
    for a, b in spans:
        pattern += re.escape(text[last:a]) + "(.+?)"
        last = b
    return pattern + re.escape(text[last:])


def test_only_dish_phrases_are_entities(swapper):
    for text in CORPUS:
        assert [text[a:b] for a, b in swapper.chunks(text)] == EXPECTED.get(text, []), text


def test_swap_changes_the_dish_and_nothing_else(swapper):
    swapped = 0
    for text in CORPUS:
        spans = swapper.chunks(text)
        for seed in range(10):
            out = swapper.swap(text, random.Random(seed))
            if not spans:
                assert out is None
                continue
            match = re.fullmatch(_outside(text, spans), out)
            assert out != text and match, (text, out)
            for (a, b), new in zip(spans, match.groups()):
                assert new in swapper.vocabulary and new.lower() != text[a:b].lower()
            swapped += 1
    assert swapped == 40
    # plural dishes are swapped for plural ones when the corpus has any ("the fries were" stays grammatical)
    assert swapper.dishes[True] == ["fries"] and "fries" not in swapper.dishes[False]


def test_swap_never_returns_its_input_and_knows_its_corpus():
    sw = EntitySwapper({"the cat sat": [(4, 7, False)], "a dog": [(2, 5, False)]})
    for seed in range(20):
        assert sw.swap("the cat sat", random.Random(seed)) == "the dog sat"
    assert EntitySwapper({"x y": [(0, 1, False)]}).swap("x y") is None  # nothing else to swap in
    with pytest.raises(KeyError, match="not in the fitted corpus"):
        sw.swap("unknown text")


def test_parses_once_and_caches(tmp_path, monkeypatch):
    first = EntitySwapper.fit(CORPUS[:3], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("dish_spans-*.json"))) == 1

    def no_spacy(*args, **kwargs):
        raise AssertionError("spaCy must not run again for a cached corpus")

    monkeypatch.setattr("showcase.generation.entities.load_spacy", no_spacy)
    again = EntitySwapper.fit(list(reversed(CORPUS[:3])), cache_dir=tmp_path)  # same corpus, other order
    assert again.spans == first.spans


@needs_wordnet
def test_every_world_sentence_swaps_its_dish_only():
    """Every dish sentence of the test world gets a negative that differs from it in the dish name alone; filler
    sentences get none."""
    texts = [t.format(dish=d[0], adj=a) for t in DISH_TEMPLATES for d in DISHES for a in ADJECTIVES[:2]]
    sw = EntitySwapper.fit(texts + FILLERS)
    names = sorted({d[0] for d in DISHES}, key=len, reverse=True)
    assert sorted(d.lower() for d in sw.vocabulary) == sorted(names)

    def blank(s: str) -> str:
        for n in names:
            s = re.sub(re.escape(n), "<dish>", s, flags=re.IGNORECASE)
        return s

    rng = random.Random(0)
    for text in texts:
        out = sw.swap(text, rng)
        assert out is not None and blank(out) == blank(text) and out != text, (text, out)
    assert all(sw.swap(f) is None for f in FILLERS)


@needs_wordnet
@pytest.mark.skipif(not (REAL_DATA / "reviews.jsonl").exists(), reason="real reviews not present")
def test_real_reviews_dish_phrases():
    """On real reviews the rule finds the usual dishes and leaves service, staff, places and pronouns alone."""
    reviews = [json.loads(line)["text"] for line in (REAL_DATA / "reviews.jsonl").read_text().splitlines()[:500]]
    reviews = [r for r in reviews if r.strip()]
    sw = EntitySwapper.fit(reviews)
    heads = [r[a:b].split()[-1].lower() for r in reviews for a, b in sw.chunks(r)]
    with_dish = sum(bool(sw.chunks(r)) for r in reviews) / len(reviews)
    print(f"\n{len(heads)} dish phrases in {len(reviews)} real reviews; {with_dish:.0%} of reviews name a dish; "
          f"{len(sw.vocabulary)} distinct dishes")
    assert {"pizza", "burger", "tacos", "salad"} & set(heads)
    not_dishes = {"service", "staff", "place", "food", "atmosphere", "we", "it", "i", "they", "you", "price",
                  "prices", "time", "restaurant", "server", "waitress", "meal", "menu"}
    assert not not_dishes & set(heads)
    assert 0.2 < with_dish < 0.9
    rng = random.Random(0)
    for r in reviews:
        spans = sw.chunks(r)
        if spans:
            assert re.fullmatch(_outside(r, spans), sw.swap(r, rng), flags=re.DOTALL)
