"""The card's reasons on a hand-made world whose answers are known: readable ranks, the history item behind each
photo, the photo each sentence talks about; and the card and collage that show them."""
import pytest
import torch

from showcase.api import Explainer, Showcase, ShowcasePhoto
from showcase.api.card import _font, wrap_words
from showcase.api.explain import ordinal
from showcase.data.records import Review, ShowcaseDataset

D = 16


class FakeStore:
    """Features by id with a chosen direction per item (unit vectors), as `FeatureStore` answers them."""

    def __init__(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]):
        self._images, self._texts, self.dim = images, texts, D

    def has_image(self, pid):
        return pid in self._images

    def has_text(self, text):
        return text in self._texts

    def image_features(self, ids):
        return torch.stack([self._images[i] for i in ids])

    def text_features(self, texts):
        return torch.stack([self._texts[t] for t in texts])


class FakeShowcaser:
    def __init__(self, dataset, store, selector):
        self.dataset, self.store, self.selector = dataset, store, selector


def axis(i: int, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    v = torch.zeros(D)
    v[i] = 1.0
    if noise:
        v = v + noise * torch.randn(D, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(v, dim=0)


@pytest.fixture
def world():
    """User U reviewed a pizza place (photo h-pizza) and a salad bar (text about salad). Business B has 6 photos:
    pizza-like, salad-like, and four of other dishes. The untrained DPP ranks photos like the cosine to the user's
    history photos, so the pizza photo is the user's 1st of 6."""
    history = [
        Review("r1", "U", "B-pizza", "The pepperoni pizza was great", ("h-pizza",), split="train"),
        Review("r2", "U", "B-salad", "Fresh green salad with lemon", ("h-other",), split="train"),
    ]
    pool = [Review(f"p{i}", f"V{i}", "B", f"review {i}", (pid,), split="train")
            for i, pid in enumerate(["b-pizza", "b-salad", "b-x", "b-y", "b-z", "b-w"])]
    images = {"h-pizza": axis(0), "h-other": axis(9), "b-pizza": axis(0, 0.2, 1), "b-salad": axis(1, 0.2, 2),
              "b-x": axis(2), "b-y": axis(3), "b-z": axis(4), "b-w": axis(5)}
    texts = {"The pepperoni pizza was great": axis(0, 0.3, 3), "Fresh green salad with lemon": axis(1, 0.3, 4),
             "Loved the pizza.": axis(0, 0.1, 5), "The salad was crisp.": axis(1, 0.1, 6), "Nice.": axis(7),
             **{f"review {i}": axis(10 + i % 5) for i in range(6)}}
    from showcase.selection import DPPSelector, DPPSelectorConfig

    torch.manual_seed(0)
    selector = DPPSelector(DPPSelectorConfig(feature_dim=D)).eval()
    return FakeShowcaser(ShowcaseDataset(history + pool), FakeStore(images, texts), selector)


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_reasons_have_the_known_answers(world):
    card = Showcase("U", "B", [ShowcasePhoto("b-salad", None, 0.0), ShowcasePhoto("b-pizza", None, 0.0)],
                    "Loved the pizza. The salad was crisp.", ["Loved the pizza.", "The salad was crisp."])
    explanation = Explainer(world).explain(card)
    assert card.explanation is explanation and explanation.scorer == "clip"
    salad, pizza = explanation.photos
    assert pizza.rank == 1 and pizza.rank_text == "1st of 6"  # closest to the user's own pizza photo
    assert salad.pool_size == 6 and salad.rank > 1
    assert [m.kind for m in pizza.matches] == ["review", "photo"]
    assert pizza.matches[0].item_id == "r1" and pizza.matches[1].item_id == "h-pizza"
    assert salad.matches[0].item_id == "r2" and salad.matches[0].text == "Fresh green salad with lemon"
    links = {link.sentence: link.photo_id for link in explanation.sentences}
    assert links == {"Loved the pizza.": "b-pizza", "The salad was crisp.": "b-salad"}


def test_classifier_scores_the_sentence_links(world):
    class Oracle(torch.nn.Module):
        """Φ that believes every sentence describes the second chosen photo."""

        threshold = 0.5

        def forward(self, text, image):
            out = torch.full((len(text), len(image)), 0.1)
            out[:, 1] = 0.9
            return out

    card = Showcase("U", "B", [ShowcasePhoto("b-salad", None, 0.0), ShowcasePhoto("b-pizza", None, 0.0)],
                    "The salad was crisp.", ["The salad was crisp."])
    explanation = Explainer(world, classifier=Oracle()).explain(card)
    assert explanation.scorer == "classifier" and "classifier" in explanation.scorer_text
    assert explanation.sentences[0].photo_id == "b-pizza" and explanation.sentences[0].score == pytest.approx(0.9)
    salad, pizza = explanation.photos
    assert [m.kind for m in salad.matches] == ["photo"]  # Φ says no earlier sentence describes it: none shown
    assert pizza.matches[0].kind == "review" and pizza.matches[0].similarity == pytest.approx(0.9)


def test_cold_start_card_says_so(world):
    card = Showcase("nobody", "B", [ShowcasePhoto("b-x", None, 2.0)], "Nice.", ["Nice."], cold_start=True)
    explanation = Explainer(world).explain(card)
    assert explanation.cold_start and explanation.photos[0].rank is None
    assert explanation.photos[0].rank_text == "group pick" and explanation.photos[0].matches == []
    page = card.to_html()
    assert 'class="cold"' in page and "New visitor" in page
    assert card.to_dict()["explanation"]["cold_start"] is True


def test_card_shows_reasons_and_business_name(world):
    world.dataset.business_name = lambda b: {"B": "Luigi's <Pizza> & Salad"}.get(b)
    card = Showcase("U", "B", [ShowcasePhoto("b-pizza", None, 0.5)], "Loved the pizza.", ["Loved the pizza."])
    Explainer(world).explain(card)
    page = card.to_html()
    assert "Luigi&#x27;s &lt;Pizza&gt; &amp; Salad" in page and "<Pizza>" not in page
    assert "ranked 1st of 6 for you" in page and "The pepperoni pizza was great" in page
    assert "CLIP cosine similarity" in page and 'class="cold"' not in page
    data = card.to_dict()
    assert data["business_name"] == "Luigi's <Pizza> & Salad"
    assert data["explanation"]["photos"][0]["rank_text"] == "1st of 6"


def test_wrap_keeps_spaces_and_width():
    font = _font(16)
    text = "the pizza is delicious and worth it " * 6
    lines = wrap_words(text, font, 300)
    assert [w for line in lines for w in line] == text.split()  # no word lost or glued to the next
    space = max(font.getlength(" "), 0.33 * font.size)
    assert all(sum(font.getlength(w) for w in line) + space * (len(line) - 1) <= 300 for line in lines)
    assert len(lines) > 3


def test_collage_has_header_and_wrapped_caption(tmp_path):
    from PIL import Image

    text = "The margherita pizza is delicious and worth it. " * 5
    card = Showcase("U1", "B1", [ShowcasePhoto("p", None, 0.1)], text)
    path = card.save(tmp_path / "card.png")
    with Image.open(path) as im:
        width, height = im.size
        header = im.crop((0, 0, width, 40)).convert("L")
        assert header.getextrema()[0] < 80  # dark title text in the header
    one_line = Showcase("U1", "B1", [ShowcasePhoto("p", None, 0.1)], "Short.").collage()
    assert height > one_line.size[1] + 40  # the long text wrapped onto several lines
