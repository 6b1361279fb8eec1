"""Why a showcase shows what it shows: readable scores, the user's history behind each photo, and which photo
each sentence talks about.

`Explainer(showcaser).explain(showcase)` returns an `Explanation`; `Showcase.to_html` renders it on the card.
Everything is computed from the pipeline's own parts (dataset, feature store, selector, and Φ when the pipeline
has it), so a card says why *this* model chose *these* photos:

* **rank**: each chosen photo's place among the business's photos by the selector's relevance for this user
  ("2nd of 38"). The DPP trades relevance for variety, so the 2nd pick need not be the 2nd most relevant.
* **reasons**: the sentence of the user's earlier reviews that best describes the chosen photo (by Φ, or CLIP
  cosine without it) and the user's earlier photo closest to it (CLIP cosine).
* **sentence → photo**: for each generated sentence, the chosen photo it most likely describes, scored by the
  sentence–photo classifier Φ (a probability) when the pipeline has one, else by CLIP cosine similarity.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

MAX_HISTORY_TEXTS = 10  # the profile the selector sees (Showcaser uses the same)
MAX_HISTORY_PHOTOS = 200  # bound the cost of a user with a very long history
SNIPPET_CHARS = 140


def ordinal(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th", 23 -> "23rd"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class HistoryMatch:
    """One of the user's earlier items close to a chosen photo.

    Attributes:
        kind: "review" (an earlier review's text) or "photo" (a photo the user posted earlier).
        item_id: the review id or photo id.
        business_id: the business the earlier review was about.
        text: the sentence of the review that best describes the chosen photo, shortened (empty for photos).
        similarity: for a review sentence, Φ's probability that it describes the photo (CLIP cosine without Φ);
            for a photo, the CLIP cosine between the two photos.
        path: the photo's file, for cards that inline it (None for reviews or a missing file; not in `to_dict`).
    """

    kind: str
    item_id: str
    business_id: str
    text: str
    similarity: float
    path: Path | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PhotoReason:
    """Why one chosen photo is on the card.

    Attributes:
        photo_id: the chosen photo.
        rank: its place (1 = most relevant) among the `pool_size` photos of the business by the selector's
            relevance for this user; None on a cold-start card (no user to rank for).
        pool_size: how many photos of the business could be ranked.
        matches: the user's closest earlier review and photo (most similar first).
    """

    photo_id: str
    rank: int | None
    pool_size: int
    matches: list[HistoryMatch] = field(default_factory=list)

    @property
    def rank_text(self) -> str:
        """"1st of 38", or "group pick" on a cold-start card."""
        return f"{ordinal(self.rank)} of {self.pool_size}" if self.rank is not None else "group pick"


@dataclass(frozen=True)
class SentenceLink:
    """The chosen photo a generated sentence most likely talks about.

    Attributes:
        sentence: the sentence.
        photo_id: the best-matching chosen photo (None when the card has no photo).
        score: Φ's probability (scorer "classifier") or the CLIP cosine (scorer "clip").
    """

    sentence: str
    photo_id: str | None
    score: float


@dataclass
class Explanation:
    """The reasons of one card.

    Attributes:
        business_name: the business's name when the dataset knows it, else None.
        photos: one `PhotoReason` per chosen photo, in selection order.
        sentences: one `SentenceLink` per sentence of the text.
        scorer: "classifier" (Φ, probabilities) or "clip" (cosine similarity) for the sentence links.
        cold_start: the user has no history: photos are the group's picks, no personal reason exists.
    """

    business_name: str | None
    photos: list[PhotoReason]
    sentences: list[SentenceLink]
    scorer: str
    cold_start: bool = False

    @property
    def scorer_text(self) -> str:
        return ("sentence–photo classifier Φ (probability)" if self.scorer == "classifier"
                else "CLIP cosine similarity")

    def for_photo(self, photo_id: str) -> PhotoReason | None:
        return next((p for p in self.photos if p.photo_id == photo_id), None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for reason, data in zip(self.photos, out["photos"]):
            data["rank_text"] = reason.rank_text
            for match in data["matches"]:
                del match["path"]  # a server's file paths are not part of the answer
        out["scorer_text"] = self.scorer_text
        return out


class Explainer:
    """Computes `Explanation`s for a loaded `Showcaser`.

    Args:
        showcaser: the pipeline (its `dataset`, `store` and `selector` are used).
        classifier: the sentence–photo classifier Φ, or None to link sentences by CLIP cosine.

    Example:
        >>> explainer = Explainer.load("runs/demo/pipeline", showcaser)   # doctest: +SKIP
        >>> explainer.explain(showcaser.generate_showcase("U0016", "B037")).photos[0].rank_text  # doctest: +SKIP
        '1st of 38'
    """

    def __init__(self, showcaser, classifier=None):
        self.showcaser, self.classifier = showcaser, classifier
        self._encoder = None

    @classmethod
    def load(cls, pipeline: str | Path, showcaser=None) -> "Explainer":
        """An explainer for a pipeline folder, with Φ when `pipeline.json` lists a classifier."""
        from showcase.api.showcaser import PIPELINE_FILE, Showcaser

        pipeline = Path(pipeline)
        showcaser = showcaser if showcaser is not None else Showcaser.load(pipeline)
        index = json.loads((pipeline / PIPELINE_FILE).read_text())
        classifier = None
        if index.get("classifier"):
            from showcase.distill.model import load_classifier

            classifier = load_classifier(pipeline / index["classifier"]).eval()
        return cls(showcaser, classifier)

    # --- features ---------------------------------------------------------------------------------------------
    @property
    def _dataset(self):
        return self.showcaser.dataset

    @property
    def _store(self):
        return self.showcaser.store

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        store = self._store
        if not texts:
            return torch.zeros(0, store.dim)
        known = [store.has_text(t) for t in texts]
        feats = torch.zeros(len(texts), store.dim)
        if any(known):
            feats[torch.tensor(known)] = store.text_features([t for t, k in zip(texts, known) if k]).float()
        if not all(known):  # generated sentences are new text: encode them with the store's own encoder
            if self._encoder is None:
                self._encoder = store.load_encoder()
            new = [t for t, k in zip(texts, known) if not k]
            feats[~torch.tensor(known)] = self._encoder.encode_texts(new).float()
        return feats

    def _image_features(self, photo_ids: list[str]) -> torch.Tensor:
        if not photo_ids:
            return torch.zeros(0, self._store.dim)
        return self._store.image_features(photo_ids).float()

    def _photo_path(self, photo_id: str) -> Path | None:
        from showcase.api.showcaser import existing_photo_path

        return existing_photo_path(self._dataset, photo_id)

    # --- the three parts --------------------------------------------------------------------------------------
    def _history(self, user_id: str, business_id: str):
        reviews = [r for r in self._dataset.user_reviews(user_id) if r.business_id != business_id]
        texts = reviews[-MAX_HISTORY_TEXTS:]
        photos = [(p, r) for r in reviews for p in r.photos if self._store.has_image(p)]
        photos = list({p: (p, r) for p, r in photos}.values())[-MAX_HISTORY_PHOTOS:]
        return texts, photos

    def _ranks(self, showcase, pool: list[str], history) -> dict[str, int]:
        from showcase.selection import select_photos

        texts, photos = history
        if not pool:
            return {}
        relevance = select_photos(
            self.showcaser.selector, self._text_features([r.text for r in texts]),
            self._image_features([p for p, _ in photos]), self._image_features(pool), k=1,
            user_ids=[showcase.user_id]).relevance  # (N,)
        order = {pid: i for i, pid in enumerate(pool)}
        ranks = {}
        for photo in showcase.photos:
            if photo.photo_id in order:
                mine = relevance[order[photo.photo_id]]
                ranks[photo.photo_id] = int((relevance > mine).sum()) + 1
        return ranks

    def _pair_scores(self, text: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """`(T, K)` sentence–photo scores: Φ's probabilities when the pipeline has Φ, else CLIP cosine."""
        if self.classifier is not None:
            return self.classifier(text, images)
        return torch.nn.functional.normalize(text, dim=-1) @ images.T

    def _matches(self, chosen: torch.Tensor, history) -> list[list[HistoryMatch]]:
        """Per chosen photo: the sentence of the user's earlier reviews that best describes it (by Φ, or CLIP
        cosine; shown only when Φ says it matches, or the cosine is positive), and their most similar photo."""
        texts, photos = history
        out: list[list[HistoryMatch]] = [[] for _ in range(len(chosen))]
        sentences = [(sentence, r) for r in texts for sentence in (r.sentences or (r.text,))]
        if sentences and len(chosen):
            scores = self._pair_scores(self._text_features([t for t, _ in sentences]), chosen)  # (T, K)
            floor = self.classifier.threshold if self.classifier is not None else 0.0
            for i in range(len(chosen)):
                j = int(scores[:, i].argmax())
                if float(scores[j, i]) > floor:
                    sentence, review = sentences[j]
                    out[i].append(HistoryMatch("review", review.review_id, review.business_id, _snippet(sentence),
                                               round(float(scores[j, i]), 4)))
        if photos:
            sims = chosen @ self._image_features([p for p, _ in photos]).T  # (K, P)
            for i, row in enumerate(sims):
                j = int(row.argmax())
                pid, review = photos[j]
                out[i].append(HistoryMatch("photo", pid, review.business_id, "", round(float(row[j]), 4),
                                           self._photo_path(pid)))
        return out

    def _sentence_links(self, sentences: list[str], photo_ids: list[str], chosen: torch.Tensor) -> list[SentenceLink]:
        if not sentences:
            return []
        if not photo_ids:
            return [SentenceLink(s, None, 0.0) for s in sentences]
        scores = self._pair_scores(self._text_features(sentences), chosen)  # (S, K)
        best = scores.argmax(dim=1)
        return [SentenceLink(s, photo_ids[int(j)], round(float(scores[i, j]), 4))
                for i, (s, j) in enumerate(zip(sentences, best))]

    @torch.no_grad()
    def explain(self, showcase) -> "Explanation":
        """The reasons of `showcase` (a result of this pipeline's `generate_showcase`); also sets
        `showcase.explanation`, so `showcase.save(...)` renders them."""
        from showcase.data.sentences import split_sentences

        photo_ids = [p.photo_id for p in showcase.photos if self._store.has_image(p.photo_id)]
        chosen = torch.nn.functional.normalize(self._image_features(photo_ids), dim=-1)  # (K, D)
        try:
            pool = [p for p in self._dataset.business_photos(showcase.business_id) if self._store.has_image(p)]
        except KeyError:
            pool = []
        cold = bool(showcase.cold_start)
        history = ([], []) if cold else self._history(showcase.user_id, showcase.business_id)
        ranks = {} if cold else self._ranks(showcase, pool, history)
        matches = self._matches(chosen, history) if not cold else [[] for _ in photo_ids]
        by_id = dict(zip(photo_ids, matches))
        reasons = [PhotoReason(p.photo_id, ranks.get(p.photo_id), len(pool), by_id.get(p.photo_id, []))
                   for p in showcase.photos]
        sentences = list(showcase.sentences) or split_sentences(showcase.text)
        explanation = Explanation(
            business_name=business_name(self._dataset, showcase.business_id), photos=reasons,
            sentences=self._sentence_links(sentences, photo_ids, chosen),
            scorer="classifier" if self.classifier is not None else "clip", cold_start=cold)
        showcase.explanation = explanation
        return explanation


def business_name(dataset, business_id: str) -> str | None:
    """The business's name when the dataset keeps names (`ShowcaseDataset.business_name`), else None."""
    lookup = getattr(dataset, "business_name", None)
    if lookup is None:
        return None
    try:
        return lookup(business_id) or None
    except KeyError:
        return None


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
