"""`Showcaser`: the trained pipeline as one folder, loaded once, answering `generate_showcase(user, business)`."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import torch

from showcase.api.result import Showcase, ShowcasePhoto
from showcase.data import ShowcaseDataset
from showcase.data.sentences import split_sentences
from showcase.errors import UserError
from showcase.pretrained import read_json_file
from showcase.utils import atomic_write_text

PIPELINE_FILE = "pipeline.json"
PARTS = ("dataset", "store", "selector", "generator")


def assemble_pipeline(
    folder: str | Path, dataset: str | Path, store: str | Path, selector: str | Path, generator: str | Path,
    classifier: str | Path | None = None, copy: bool = True,
) -> Path:
    """Gather the trained parts into one pipeline folder with a `pipeline.json` index.

    Args:
        folder: the pipeline folder to write.
        dataset, store: the dataset folder (the index of users, businesses and photos) and its CLIP feature store.
        selector, generator, classifier: exported model folders (`config.json` + `model.safetensors`).
        copy: copy every part into the folder (self-contained); otherwise record their absolute paths (large stores).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"dataset": dataset, "store": store, "selector": selector, "generator": generator}
    if classifier is not None:
        parts["classifier"] = classifier
    index = {}
    for name, source in parts.items():
        source = Path(source)
        if not source.is_dir():
            raise FileNotFoundError(f"pipeline part {name!r}: {source} is not a folder")
        if copy:
            shutil.copytree(source, folder / name, dirs_exist_ok=True)
            index[name] = name
        else:
            index[name] = str(source.resolve())
    atomic_write_text(folder / PIPELINE_FILE, json.dumps(index, indent=2))
    return folder


@dataclass
class _Request:
    user_id: str
    business_id: str
    pool: list[str]
    history_texts: list[str]
    history_photos: list[str]
    cold_start: bool
    notes: list[str]


class Showcaser:
    """A loaded pipeline: dataset index, feature store, selector and generator.

    Example:
        >>> showcaser = Showcaser.load("runs/demo/pipeline")          # doctest: +SKIP
        >>> result = showcaser.generate_showcase("U0016", "B037", k=3)  # doctest: +SKIP
        >>> result.save("card.html")                                   # doctest: +SKIP
    """

    def __init__(self, dataset, store, selector, generator, num_beams: int = 2, max_new_tokens: int = 64):
        self.dataset, self.store, self.selector, self.generator = dataset, store, selector, generator
        self.num_beams, self.max_new_tokens = num_beams, max_new_tokens
        self._encoder = None

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", **kwargs) -> "Showcaser":
        """Load a folder written by `assemble_pipeline` (what `showcase demo` writes to `runs/demo/pipeline`)."""
        from showcase.encoders import FeatureStore
        from showcase.generation.model import ExplanationGenerator
        from showcase.selection import load_selector

        folder = Path(folder)
        index_path = folder / PIPELINE_FILE
        if not index_path.is_file():
            raise UserError(f"not found: {folder} is not a pipeline folder (showcase demo writes one)", path=index_path)
        index = read_json_file(index_path)
        if not isinstance(index, dict) or not all(isinstance(v, str) for v in index.values()):
            raise UserError("expected an object of part name -> folder", path=index_path)
        missing = [p for p in PARTS if p not in index]
        if missing:
            raise UserError(f"missing parts {missing}", path=index_path)
        path = {name: folder / value for name, value in index.items()}  # absolute values stay absolute
        for name, part in path.items():
            if not part.is_dir():
                raise UserError(f"part {name!r}: folder {part} not found", path=index_path)
        dataset = ShowcaseDataset.load(path["dataset"])
        store = FeatureStore.open(path["store"])
        selector = load_selector(path["selector"], map_location=device).eval()
        generator = ExplanationGenerator.from_pretrained(path["generator"], map_location=device).eval()
        return cls(dataset, store, selector, generator, **kwargs)

    # --- features -------------------------------------------------------------------------------------------------
    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self.store.load_encoder()
        return self._encoder

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.store.dim)
        known = torch.tensor([self.store.has_text(t) for t in texts])
        feats = torch.zeros(len(texts), self.store.dim)
        if known.any():
            feats[known] = self.store.text_features([t for t, k in zip(texts, known) if k])
        if not known.all():  # new text (e.g. a history given at call time): encode it with the store's encoder
            feats[~known] = self.encoder.encode_texts([t for t, k in zip(texts, known) if not k]).float()
        return feats

    def _image_features(self, photo_ids: Sequence[str]) -> torch.Tensor:
        if not photo_ids:
            return torch.zeros(0, self.store.dim)
        return self.store.image_features(list(photo_ids))

    # --- requests ---------------------------------------------------------------------------------------------------
    def _request(self, user_id: str, business_id: str) -> _Request:
        try:
            pool = self.dataset.business_photos(business_id)
        except KeyError:
            raise KeyError(f"unknown business {business_id!r}: it has no review in {self.dataset.meta.get('source', 'the dataset')}") from None
        notes = []
        usable = [p for p in pool if self.store.has_image(p)]
        if len(usable) < len(pool):
            notes.append(f"{len(pool) - len(usable)} photos of the business have no features (missing or unreadable)")
        profile = self.dataset.user_profile(user_id, exclude_business=business_id)
        texts = list(profile.texts)[-10:]
        photos = [p for p in profile.photos if self.store.has_image(p)]
        cold = not texts and not photos
        if cold:
            notes.append("cold start: the user has no history, so the photos come from the group ranking of the "
                         "business's reviewers (ELVis) and the text is conditioned on the photos alone")
        if not usable:
            notes.append("the business has no usable photo: the text is conditioned on the user's history alone")
        return _Request(user_id, business_id, usable, texts, photos, cold, notes)

    def _group_scores(self, request: _Request, pool_features: torch.Tensor) -> torch.Tensor:
        """ELVis group ranking φ(S, f) = Σ_{u∈S} Pr(u, f), with the selector's relevance as Pr, over the reviewers."""
        from showcase.selection import select_photos

        reviewers = sorted({r.user_id for r in self.dataset if r.business_id == request.business_id} - {request.user_id})
        texts, images = [], []
        for u in reviewers:
            profile = self.dataset.user_profile(u, exclude_business=request.business_id)
            texts.append(self._text_features(list(profile.texts)[-10:]))
            images.append(self._image_features([p for p in profile.photos if self.store.has_image(p)]))
        if not reviewers:
            return torch.ones(len(request.pool))
        relevance = select_photos(self.selector, texts, images, [pool_features] * len(reviewers), k=1,
                                  user_ids=reviewers).relevance  # (R, N)
        return relevance.sum(0)

    def _select(self, requests: list[_Request], k: int) -> list[tuple[list[int], list[float]]]:
        from showcase.selection import build_kernel, greedy_map, select_photos

        results: list[tuple[list[int], list[float]] | None] = [None] * len(requests)
        warm = [i for i, r in enumerate(requests) if not r.cold_start and r.pool]
        pools = [self._image_features(r.pool) for r in requests]
        if warm:
            selection = select_photos(
                self.selector,
                [self._text_features(requests[i].history_texts) for i in warm],
                [self._image_features(requests[i].history_photos) for i in warm],
                [pools[i] for i in warm], k=k, user_ids=[requests[i].user_id for i in warm])
            for row, i in enumerate(warm):
                chosen = [j for j in selection.indices[row].tolist() if j >= 0]
                results[i] = (chosen, [float(selection.relevance[row, j]) for j in chosen])
        for i, r in enumerate(requests):
            if results[i] is not None:
                continue
            if not r.pool:
                results[i] = ([], [])
                continue
            phi = self._group_scores(r, pools[i])
            quality = phi / phi.max().clamp_min(1e-8)
            chosen = [j for j in greedy_map(build_kernel(quality, pools[i]), k).tolist() if j >= 0]
            results[i] = (chosen, [float(phi[j]) for j in chosen])
        return results  # type: ignore[return-value]

    def _generate(self, requests: list[_Request], chosen: list[list[str]]) -> list[str]:
        gen = self.generator
        max_images, max_reviews = gen.config.max_images, gen.config.max_reviews
        d = self.store.dim
        B = len(requests)
        images = torch.zeros(B, max(1, max_images), d)
        image_mask = torch.zeros(B, max(1, max_images), dtype=torch.bool)
        reviews = torch.zeros(B, max(1, max_reviews), d)
        review_mask = torch.zeros(B, max(1, max_reviews), dtype=torch.bool)
        for b, (r, photos) in enumerate(zip(requests, chosen)):
            photos = photos[:max_images]
            if photos:
                images[b, : len(photos)] = self._image_features(photos)
                image_mask[b, : len(photos)] = True
            texts = r.history_texts[-max_reviews:]
            if texts:
                reviews[b, : len(texts)] = self._text_features(texts)
                review_mask[b, : len(texts)] = True
        return gen.generate(images, image_mask, reviews, review_mask, num_beams=self.num_beams,
                            max_new_tokens=self.max_new_tokens)

    # --- public -----------------------------------------------------------------------------------------------------
    def generate_showcases(
        self, pairs: Iterable[tuple[str, str]], k: int = 3, batch_size: int = 64, seed: int = 0
    ) -> list[Showcase]:
        """Showcases for many (user_id, business_id) pairs: selection and decoding run in batches.

        Raises:
            KeyError: naming the first unknown business.
        """
        pairs = list(pairs)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out: list[Showcase] = []
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)  # only the random baseline selector draws numbers
            for start in range(0, len(pairs), batch_size):
                requests = [self._request(u, b) for u, b in pairs[start: start + batch_size]]
                selections = self._select(requests, k)
                chosen = [[r.pool[j] for j in idx] for r, (idx, _) in zip(requests, selections)]
                texts = self._generate(requests, chosen)
                for r, (idx, rel), photos, text in zip(requests, selections, chosen, texts):
                    notes = list(r.notes)
                    if len(r.pool) < k:
                        notes.append(f"the business has {len(r.pool)} usable photos, fewer than k = {k}")
                    out.append(Showcase(
                        user_id=r.user_id, business_id=r.business_id,
                        photos=[ShowcasePhoto(p, self._photo_path(p), s) for p, s in zip(photos, rel)],
                        text=text, sentences=split_sentences(text), cold_start=r.cold_start, notes=notes))
        return out

    def generate_showcase(self, user_id: str, business_id: str, k: int = 3, seed: int = 0) -> Showcase:
        """The showcase of `business_id` for `user_id`: k photos (fewer if the pool is smaller) and a text.

        A user without history (unknown or cold) gets the group showcase of the business's reviewers and text
        conditioned on the photos alone (`cold_start=True`). A business with no usable photo gets text conditioned
        on the user's history alone and no photos (said in `notes`).

        Raises:
            KeyError: when the business is unknown.
        """
        return self.generate_showcases([(user_id, business_id)], k=k, seed=seed)[0]

    def _photo_path(self, photo_id: str) -> Path | None:
        try:
            path = self.dataset.photo_path(photo_id)
        except ValueError:
            return None
        return path if path.is_file() else None


@lru_cache(maxsize=4)
def _cached(folder: str) -> Showcaser:
    return Showcaser.load(folder)


def generate_showcase(user_id: str, business_id: str, pipeline: str | Path, k: int = 3, seed: int = 0) -> Showcase:
    """One-call form: loads `pipeline` once (cached per folder) and returns the showcase of the pair."""
    return _cached(str(Path(pipeline).resolve())).generate_showcase(user_id, business_id, k=k, seed=seed)


def generate_showcases(
    pairs: Iterable[tuple[str, str]], pipeline: str | Path, k: int = 3, seed: int = 0
) -> list[Showcase]:
    """Batch form of `generate_showcase`: the pairs' showcases, with selection and decoding batched."""
    return _cached(str(Path(pipeline).resolve())).generate_showcases(pairs, k=k, seed=seed)
