"""`Showcaser`: the trained pipeline as one folder, loaded once, answering `generate_showcase(user, business)`."""
from __future__ import annotations

import json
import random
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import torch

from showcase.api.result import Showcase, ShowcasePhoto
from showcase.data import ShowcaseDataset
from showcase.data.sentences import split_sentences
from showcase.errors import UserError
from showcase.inputs import (
    FeatureLookup,
    InputLimits,
    Request,
    generator_photos,
    limit_history,
    pad_rows,
    resolve_request,
    user_history,
)
from showcase.pretrained import read_json_file
from showcase.selection.inference import MAX_CANDIDATES, group_relevance, select_by_quality, select_photos
from showcase.utils import atomic_write_text

POOL_BATCH_PHOTOS = 4096  # padded pool photos per batch of warm requests (a batch pads to its largest pool)
MAX_REVIEWERS = 100  # reviewers in a cold-start group ranking (a seeded sample when a business has more)

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


class Showcaser:
    """A loaded pipeline: dataset index, feature store, selector and generator.

    Inputs are built by `showcase.inputs` with each model's saved limits, exactly as in training and testing.
    Requests are bounded: the DPP sees the `max_candidates` most relevant photos of the pool; a cold-start request
    ranks the pool by φ(S, f) = Σ_u Pr(u, f) over at most `max_reviewers` of the business's reviewers (a seeded
    sample when there are more).

    Args:
        dataset, store, selector, generator: the loaded parts.
        num_beams, max_new_tokens: decoding settings (None: the generator's saved ones, else 2 beams / 64 tokens).
        selector_limits: the selector's input limits (None: its saved ones, else `InputLimits()`).
        max_candidates: photos the DPP sees per request (None: the whole pool).
        max_reviewers: reviewers in a cold-start group ranking (None: all).

    Example:
        >>> showcaser = Showcaser.load("runs/demo/pipeline")          # doctest: +SKIP
        >>> result = showcaser.generate_showcase("U0016", "B037", k=3)  # doctest: +SKIP
        >>> result.save("card.html")                                   # doctest: +SKIP
    """

    def __init__(self, dataset, store, selector, generator, num_beams: int | None = None,
                 max_new_tokens: int | None = None, selector_limits: InputLimits | None = None,
                 max_candidates: int | None = MAX_CANDIDATES, max_reviewers: int | None = MAX_REVIEWERS):
        self.dataset, self.store, self.selector, self.generator = dataset, store, selector, generator
        decoding = getattr(generator, "decoding", None) or {}
        self.num_beams = num_beams if num_beams is not None else int(decoding.get("num_beams", 2))
        self.max_new_tokens = max_new_tokens if max_new_tokens is not None else int(decoding.get("max_new_tokens", 64))
        self.selector_limits = selector_limits or InputLimits.from_dict(getattr(selector, "input_limits", None))
        cfg = generator.config
        saved = getattr(generator, "input_limits", None) or {}
        self.generator_limits = InputLimits.from_dict(saved, history_texts=cfg.max_reviews, history_photos=0,
                                                      images=cfg.max_images)
        self.use_images, self.use_reviews = saved.get("use_images", True), saved.get("use_reviews", True)
        self.max_candidates, self.max_reviewers = max_candidates, max_reviewers
        self.features = FeatureLookup(store)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", allow_encoder_mismatch: bool = False,
             **kwargs) -> "Showcaser":
        """Load a folder written by `assemble_pipeline` (what `showcase demo` writes to `runs/demo/pipeline`).

        Raises:
            UserError: when the models were trained on features of another encoder than the pipeline's store
                (unless `allow_encoder_mismatch`).
        """
        from showcase.encoders import FeatureStore
        from showcase.fingerprint import check_model_encoder
        from showcase.pretrained import load_model

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
        for part in ("selector", "generator"):
            check_model_encoder(path[part], store, allow=allow_encoder_mismatch)
        selector = load_model(path["selector"], map_location=device).eval()
        generator = load_model(path["generator"], map_location=device).eval()
        return cls(dataset, store, selector, generator, **kwargs)

    # --- requests ---------------------------------------------------------------------------------------------------
    def _features(self, rows: list[list[str]], texts: bool) -> list[torch.Tensor]:
        return [self.features.texts(r) if texts else self.features.images(r) for r in rows]

    def business_reviewers(self, business_id: str) -> list[str]:
        """The business's reviewers (sorted), from the dataset's index."""
        return sorted(set(self.dataset.business_reviewers(business_id)))

    def _group_relevance(self, request: Request, pool_features: torch.Tensor, seed: int) -> torch.Tensor:
        """φ(S, f) = Σ_{u∈S} Pr(u, f) over the business's reviewers (a seeded sample of `max_reviewers`)."""
        reviewers = [u for u in self.business_reviewers(request.business_id) if u != request.user_id]
        if not reviewers:
            return torch.ones(len(pool_features))
        if self.max_reviewers is not None and len(reviewers) > self.max_reviewers:
            reviewers = sorted(random.Random(f"{seed}-{request.business_id}").sample(reviewers, self.max_reviewers))
        histories = []
        for u in reviewers:
            texts, photos = user_history(self.dataset, u, request.business_id)
            histories.append(limit_history(texts, photos, self.features.has_image, self.selector_limits))
        return group_relevance(self.selector, self._features([h.texts for h in histories], True),
                               self._features([h.photos for h in histories], False), pool_features, reviewers)

    def _select(self, requests: list[Request], k: int, seed: int) -> list[tuple[list[str], list[float]]]:
        """Chosen photo ids and their relevance per request (given photos are kept and scored)."""
        candidates = [r.pool + [p for p in (r.given_photos or []) if p not in r.pool and self.features.has_image(p)]
                      for r in requests]
        pools = self._features(candidates, texts=False)
        out: list[tuple[list[str], list[float]] | None] = [None] * len(requests)
        warm = [i for i, r in enumerate(requests) if not r.cold_start and candidates[i]]
        for group in padding_bounded_groups(warm, [len(candidates[i]) for i in warm]):
            histories = [requests[i].history(self.selector_limits) for i in group]
            selection = select_photos(
                self.selector, self._features([h.texts for h in histories], True),
                self._features([h.photos for h in histories], False), [pools[i] for i in group], k=k,
                user_ids=[requests[i].user_id for i in group], max_candidates=self.max_candidates)
            for row, i in enumerate(group):
                relevance = selection.relevance[row, : len(candidates[i])]
                chosen = [j for j in selection.indices[row].tolist() if j >= 0]
                out[i] = self._chosen(requests[i], candidates[i], relevance, chosen)
        for i, r in enumerate(requests):
            if out[i] is not None:
                continue
            if not candidates[i]:
                out[i] = ([], [])
                continue
            phi = self._group_relevance(r, pools[i], seed)
            chosen = [] if r.given_photos is not None else select_by_quality(
                phi / phi.max().clamp_min(1e-8), pools[i], k, self.max_candidates)
            out[i] = self._chosen(r, candidates[i], phi, chosen)
        return out  # type: ignore[return-value]

    @staticmethod
    def _chosen(request: Request, candidates: list[str], relevance: torch.Tensor, chosen: list[int]):
        if request.given_photos is not None:  # explain the given photos: their relevance, or 0 without features
            position = {p: j for j, p in enumerate(candidates)}
            return (list(request.given_photos),
                    [float(relevance[position[p]]) if p in position else 0.0 for p in request.given_photos])
        return [candidates[j] for j in chosen], [float(relevance[j]) for j in chosen]

    def _generate(self, requests: list[Request], chosen: list[list[str]]) -> list[str]:
        limits = self.generator_limits
        photos = [generator_photos(c, self.features.has_image, limits) for c in chosen]
        texts = [r.history(limits).texts for r in requests]
        images, image_mask = pad_rows(self._features(photos, texts=False), self.store.dim)  # (B, I, d), (B, I)
        reviews, review_mask = pad_rows(self._features(texts, texts=True), self.store.dim)  # (B, T, d), (B, T)
        return self.generator.generate(
            images if self.use_images else None, image_mask if self.use_images else None,
            reviews if self.use_reviews else None, review_mask if self.use_reviews else None,
            num_beams=self.num_beams, max_new_tokens=self.max_new_tokens)

    # --- public -----------------------------------------------------------------------------------------------------
    def generate_showcases(
        self, pairs: Iterable[tuple[str, str]], k: int = 3, batch_size: int = 64, seed: int = 0,
        photos: Sequence[Sequence[str] | None] | None = None,
    ) -> list[Showcase]:
        """Showcases for many (user_id, business_id) pairs: selection and decoding run in batches.

        Args:
            pairs: (user_id, business_id) pairs.
            k: photos to select per pair.
            batch_size: pairs per batch.
            seed: seed of the random baseline selector and of the cold-start reviewer sample.
            photos: per pair, photos to explain instead of selecting (None for a pair: select). Given photos are
                scored by the selector (their `relevance`) and described by the generator, like a review's own
                photos at test time.

        Raises:
            KeyError: naming the first unknown business.
        """
        pairs = list(pairs)
        given = list(photos) if photos is not None else [None] * len(pairs)
        if len(given) != len(pairs):
            raise ValueError(f"photos has {len(given)} entries for {len(pairs)} pairs")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out: list[Showcase] = []
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)  # only the random baseline selector draws numbers
            for start in range(0, len(pairs), batch_size):
                requests = [resolve_request(self.dataset, self.features, u, b, photos=p)
                            for (u, b), p in zip(pairs[start: start + batch_size], given[start: start + batch_size])]
                selections = self._select(requests, k, seed)
                texts = self._generate(requests, [ids for ids, _ in selections])
                for r, (ids, rel), text in zip(requests, selections, texts):
                    notes = list(r.notes)
                    if r.given_photos is None and len(r.pool) < k:
                        notes.append(f"the business has {len(r.pool)} usable photos, fewer than k = {k}")
                    out.append(Showcase(
                        user_id=r.user_id, business_id=r.business_id,
                        photos=[ShowcasePhoto(p, self._photo_path(p), s) for p, s in zip(ids, rel)],
                        text=text, sentences=split_sentences(text), cold_start=r.cold_start, notes=notes))
        return out

    def generate_showcase(self, user_id: str, business_id: str, k: int = 3, seed: int = 0,
                          photos: Sequence[str] | None = None) -> Showcase:
        """The showcase of `business_id` for `user_id`: k photos (fewer if the pool is smaller) and a text.

        A user without history (unknown or cold) gets the group showcase of the business's reviewers and text
        conditioned on the photos alone (`cold_start=True`). A business with no usable photo gets text conditioned
        on the user's history alone and no photos (said in `notes`). With `photos`, those photos are explained
        instead of selected (e.g. a user's own photos of the business).

        Raises:
            KeyError: when the business is unknown.
        """
        return self.generate_showcases([(user_id, business_id)], k=k, seed=seed,
                                       photos=None if photos is None else [photos])[0]

    def _photo_path(self, photo_id: str) -> Path | None:
        return existing_photo_path(self.dataset, photo_id)


def existing_photo_path(dataset, photo_id: str) -> Path | None:
    """The photo's file when the dataset has a photo folder and the file is there, else None."""
    try:
        path = dataset.photo_path(photo_id)
    except ValueError:
        return None
    return path if path.is_file() else None


def padding_bounded_groups(items: list[int], sizes: list[int], budget: int = POOL_BATCH_PHOTOS) -> list[list[int]]:
    """Split `items` into batches of similar pool size whose padded size (rows x largest pool) stays within
    `budget` photos, so one request with a huge pool never makes a whole batch pad to it."""
    order = sorted(range(len(items)), key=lambda j: sizes[j])
    groups: list[list[int]] = []
    for j in order:
        if groups and max(sizes[j], 1) * (len(groups[-1]) + 1) <= budget:
            groups[-1].append(items[j])
        else:
            groups.append([items[j]])
    return groups


@lru_cache(maxsize=4)
def _cached(folder: str) -> Showcaser:
    return Showcaser.load(folder)


def generate_showcase(user_id: str, business_id: str, pipeline: str | Path, k: int = 3, seed: int = 0,
                      photos: Sequence[str] | None = None) -> Showcase:
    """One-call form: loads `pipeline` once (cached per folder) and returns the showcase of the pair."""
    return _cached(str(Path(pipeline).resolve())).generate_showcase(user_id, business_id, k=k, seed=seed,
                                                                    photos=photos)


def generate_showcases(
    pairs: Iterable[tuple[str, str]], pipeline: str | Path, k: int = 3, seed: int = 0,
    photos: Sequence[Sequence[str] | None] | None = None,
) -> list[Showcase]:
    """Batch form of `generate_showcase`: the pairs' showcases, with selection and decoding batched."""
    return _cached(str(Path(pipeline).resolve())).generate_showcases(pairs, k=k, seed=seed, photos=photos)
