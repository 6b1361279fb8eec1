"""A synthetic selection world with a known answer: users photograph the dish clusters they like.

Each user likes two of C clusters and has a personal tint (like the test world's table colour); each review holds
one photo of each liked cluster, so the target set is both relevant and diverse. Businesses' pools mix the photos
of all their reviewers. Features play the role of CLIP embeddings; `FakeStore` serves them like a FeatureStore.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from showcase.data.records import HistoryItem, Review, ShowcaseDataset


class FakeStore:
    def __init__(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor], dim: int):
        self.images, self.texts, self.dim = images, texts, dim

    def has_image(self, pid: str) -> bool:
        return pid in self.images

    def has_text(self, text: str) -> bool:
        return text in self.texts

    def image_features(self, ids):
        return torch.stack([self.images[i] for i in ids])

    def text_features(self, texts):
        return torch.stack([self.texts[t] for t in texts])


def make_world(users: int = 80, businesses: int = 20, clusters: int = 8, dim: int = 16, reviews_per_user: int = 4,
               tint: float = 0.0, seed: int = 0) -> tuple[ShowcaseDataset, FakeStore]:
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(clusters, dim, generator=gen), dim=-1)
    images, texts, reviews = {}, {}, []
    for u in range(users):
        likes = torch.randperm(clusters, generator=gen)[:2].tolist()
        tint_vec = tint * F.normalize(torch.randn(dim, generator=gen), dim=0)
        split = "train" if u % 10 < 7 else ("val" if u % 10 < 8 else "test")
        bids = torch.randperm(businesses, generator=gen)[:reviews_per_user].tolist()
        user_reviews = []
        for r, b in enumerate(bids):
            rid, photos = f"u{u}r{r}", []
            for c in likes:
                pid = f"{rid}p{c}"
                images[pid] = F.normalize(centres[c] + tint_vec + 0.25 * torch.randn(dim, generator=gen), dim=0)
                photos.append(pid)
            text = f"review {rid}"
            texts[text] = F.normalize(centres[likes].sum(0) + 0.5 * torch.randn(dim, generator=gen), dim=0)
            user_reviews.append((rid, f"u{u}", f"b{b}", text, tuple(photos), split))
        for rid, uid, bid, text, photos, split in user_reviews:
            history = tuple(HistoryItem(o[0], o[3]) for o in user_reviews if o[0] != rid)
            reviews.append(Review(rid, uid, bid, text, photos, split=split, history=history))
    return ShowcaseDataset(reviews), FakeStore(images, texts, dim)
