"""The test world: a deterministic, learnable dataset in the Google Local `filter_all_t.json` format.

Each dish type has its own shape, colour, texture and name; photos are rendered dishes on the author's table (each
user has a table tint). Users like a few dish types (drawn around one of a few "tastes", so similar users have
similar histories) and write in their own voice (favourite adjectives). Businesses serve a menu of dish types and
their photo pools come from many users. A review names the dishes of its photos ("The miso ramen was rich.") and
adds filler sentences that describe no photo ("Parking was easy."). The ground truth goes to `world.json`.
Each business has a name (`business_name` in its records, e.g. "Golden Dragon Noodle House").
Some records are deliberately bad for the filters: short reviews, reviews with too many photos, users with one review,
photos whose file is missing (expired URLs); half the `pics` use the `{"url": [...]}` shape.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from showcase.utils import atomic_write_text

DISHES = [  # name, shape, colour (RGB), texture
    ("miso ramen", "bowl", (214, 160, 60), "waves"),
    ("margherita pizza", "circle", (200, 40, 30), "dots"),
    ("bacon cheeseburger", "dome", (130, 75, 30), "stripes"),
    ("caesar salad", "blob", (90, 170, 60), "dots"),
    ("pad thai", "square", (235, 140, 50), "waves"),
    ("salmon sushi", "rect", (250, 120, 100), "stripes"),
    ("beef taco", "triangle", (225, 190, 90), "checker"),
    ("chocolate cake", "wedge", (80, 40, 25), "stripes"),
    ("blueberry pancakes", "stack", (170, 120, 200), "dots"),
    ("chicken pho", "ring", (240, 220, 150), "waves"),
    ("fish tacos", "diamond", (60, 140, 200), "checker"),
    ("falafel wrap", "star", (150, 110, 40), "dots"),
]
TABLES = [(245, 245, 240), (60, 60, 70), (180, 140, 100), (200, 220, 235), (120, 150, 120), (230, 200, 200)]
ADJECTIVES = ["delicious", "amazing", "fresh", "rich", "tasty", "perfect", "crispy", "flavorful", "huge", "warm",
              "spicy", "tender", "sweet", "light", "savory", "juicy"]
DISH_TEMPLATES = [
    "The {dish} was {adj}.",
    "I had the {dish} and it was {adj}.",
    "Their {dish} is {adj} and worth it.",
    "We ordered the {dish}, which was {adj}.",
    "My {dish} came out {adj}.",
]
FILLERS = [
    "Parking was easy to find.", "The staff were friendly and quick.", "We came here on a busy Saturday night.",
    "Prices are fair for the area.", "The music was a little loud.", "We will definitely come back again.",
    "Service was slow but polite.", "It was my first time visiting this place.", "Great spot for a family dinner.",
    "The wait was about twenty minutes.",
]
NAME_WORDS = (
    ["Golden", "Little", "Blue", "Happy", "Old Town", "Lucky", "Red", "Green", "Silver", "Sunny"],
    ["Dragon", "Oak", "Harbor", "Garden", "Lantern", "Fox", "Maple", "River", "Bridge", "Star"],
    ["Noodle House", "Kitchen", "Bistro", "Diner", "Cafe", "Grill", "Eatery", "Tavern", "Table", "Canteen"],
)
# "tiny" (tens of photos) is for smoke tests of the full-size models, too small to learn from
SIZES = {"tiny": dict(users=16, businesses=5, menu=6), "small": dict(users=150, businesses=40, menu=6),
         "medium": dict(users=450, businesses=100, menu=6)}


@dataclass(frozen=True)
class WorldConfig:
    users: int = 150
    businesses: int = 40
    menu: int = 6
    reviews_per_user: tuple[int, int] = (3, 5)
    photos_per_review: tuple[int, int] = (1, 3)
    likes_per_user: int = 3
    p_liked: float = 0.85
    image_size: int = 64
    seed: int = 0


def render_dish(dish: int, table: tuple[int, int, int], rng: random.Random, size: int = 64) -> Image.Image:
    """Draw one dish on a plate on the user's table, with jitter in position, scale, rotation and light."""
    name, shape, colour, texture = DISHES[dish]
    scale = 4  # draw large, then downsample for smooth edges
    S = size * scale
    light = rng.uniform(0.85, 1.1)
    tint = tuple(max(0, min(255, int(c * light + rng.gauss(0, 6)))) for c in table)
    img = Image.new("RGB", (S, S), tint)
    d = ImageDraw.Draw(img)
    cx, cy = S / 2 + rng.uniform(-0.08, 0.08) * S, S / 2 + rng.uniform(-0.08, 0.08) * S
    r = S * rng.uniform(0.36, 0.44)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 250, 250), outline=(210, 210, 210), width=scale * 2)
    col = tuple(max(0, min(255, int(c * light + rng.gauss(0, 8)))) for c in colour)
    dark = tuple(int(c * 0.55) for c in col)
    rr = r * rng.uniform(0.62, 0.72)
    rot = rng.uniform(0, 2 * math.pi)

    def poly(n: int, radius: float, inner: float | None = None) -> list[tuple[float, float]]:
        pts = []
        for k in range(n * (2 if inner else 1)):
            rad = inner if inner and k % 2 else radius
            a = rot + 2 * math.pi * k / (n * (2 if inner else 1))
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts

    box = [cx - rr, cy - rr, cx + rr, cy + rr]
    if shape in ("circle", "blob"):
        d.ellipse(box, fill=col)
    elif shape == "bowl":
        d.ellipse(box, fill=dark)
        d.ellipse([cx - rr * 0.8, cy - rr * 0.8, cx + rr * 0.8, cy + rr * 0.8], fill=col)
    elif shape == "ring":
        d.ellipse(box, fill=col)
        d.ellipse([cx - rr * 0.45, cy - rr * 0.45, cx + rr * 0.45, cy + rr * 0.45], fill=(250, 250, 250))
    elif shape == "dome":
        d.pieslice(box, 180, 360, fill=col)
        d.rectangle([cx - rr, cy, cx + rr, cy + rr * 0.35], fill=dark)
    elif shape == "square":
        d.polygon(poly(4, rr), fill=col)
    elif shape == "rect":
        for k in (-1, 0, 1):
            d.rectangle([cx - rr, cy + k * rr * 0.6 - rr * 0.22, cx + rr, cy + k * rr * 0.6 + rr * 0.22], fill=col)
    elif shape == "triangle":
        d.polygon(poly(3, rr), fill=col)
    elif shape == "wedge":
        d.pieslice(box, math.degrees(rot), math.degrees(rot) + 70, fill=col)
    elif shape == "stack":
        for k in range(3):
            off = (1 - k) * rr * 0.3
            d.ellipse([cx - rr, cy + off - rr * 0.3, cx + rr, cy + off + rr * 0.3], fill=col, outline=dark)
    elif shape == "diamond":
        d.polygon(poly(4, rr * 1.1), fill=col)
        d.polygon(poly(4, rr * 0.5), fill=dark)
    elif shape == "star":
        d.polygon(poly(5, rr, rr * 0.45), fill=col)
    # texture inside the dish area
    step = int(S / 10)
    if texture == "stripes":
        for x in range(0, S, step):
            d.line([(x, cy - rr), (x + rr * 0.5, cy + rr)], fill=dark, width=scale * 2)
    elif texture == "dots":
        for _ in range(14):
            a, b = rng.uniform(0, 2 * math.pi), rng.uniform(0, rr * 0.8)
            x, y = cx + b * math.cos(a), cy + b * math.sin(a)
            d.ellipse([x - 2 * scale, y - 2 * scale, x + 2 * scale, y + 2 * scale], fill=dark)
    elif texture == "checker":
        for i in range(-3, 3):
            for j in range(-3, 3):
                if (i + j) % 2 == 0:
                    x, y = cx + i * rr / 3, cy + j * rr / 3
                    d.rectangle([x, y, x + rr / 6, y + rr / 6], fill=dark)
    elif texture == "waves":
        for k in range(-2, 3):
            y0 = cy + k * rr * 0.3
            pts = [(cx - rr + t * rr / 10, y0 + math.sin(t) * rr * 0.08) for t in range(21)]
            d.line(pts, fill=dark, width=scale * 2)
    img = img.filter(ImageFilter.GaussianBlur(scale * 0.5)).resize((size, size), Image.BILINEAR)
    return img


def business_name(index: int) -> str:
    """A readable, unique (for up to 100 businesses) restaurant name: 0 is "Golden Dragon Noodle House"."""
    first, second, kind = NAME_WORDS
    return f"{first[index % 10]} {second[index // 10 % 10]} {kind[(index + index // 10) % 10]}"


def generate_world(output: str | Path, seed: int = 0, size: str = "small", config: WorldConfig | None = None) -> Path:
    """Write the test world to `output`: `filter_all_t.json`, `photos/`, `world.json`. Deterministic per seed."""
    if config is None:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; expected one of {sorted(SIZES)}")
        config = WorldConfig(seed=seed, **SIZES[size])
    rng = random.Random(config.seed)
    out = Path(output)
    photos_dir = out / "photos"
    photos_dir.mkdir(parents=True, exist_ok=True)
    n_dish = len(DISHES)

    tastes = [rng.sample(range(n_dish), 4) for _ in range(4)]  # users cluster around a few tastes
    users = {}
    for u in range(config.users):
        taste = tastes[u % len(tastes)]
        likes = rng.sample(taste, config.likes_per_user - 1) + [rng.randrange(n_dish)]
        users[f"U{u:04d}"] = dict(
            likes=sorted(set(likes)), table=rng.randrange(len(TABLES)), adjectives=rng.sample(ADJECTIVES, 2)
        )
    businesses = {f"B{b:03d}": sorted(rng.sample(range(n_dish), config.menu)) for b in range(config.businesses)}
    bids = list(businesses)
    names = {b: business_name(i) for i, b in enumerate(bids)}

    records, photo_dish, sentences_gt, photo_seq = [], {}, {}, 0

    def new_photo(dish: int, user: dict) -> str:
        nonlocal photo_seq
        photo_seq += 1
        pid = f"AF1QipW{config.seed:02d}{photo_seq:06d}"
        render_dish(dish, TABLES[user["table"]], rng, config.image_size).save(photos_dir / f"{pid}.jpg", quality=92)
        photo_dish[pid] = DISHES[dish][0]
        return pid

    for uid, user in users.items():
        n_reviews = rng.randint(*config.reviews_per_user)
        liked_businesses = [b for b in bids if set(businesses[b]) & set(user["likes"])]
        candidates = liked_businesses or bids
        for k, bid in enumerate(rng.sample(candidates, min(n_reviews, len(candidates)))):
            menu = businesses[bid]
            liked = [d for d in menu if d in user["likes"]]
            n_photos = rng.randint(*config.photos_per_review)
            dishes = []
            for _ in range(n_photos):
                pool = liked if liked and rng.random() < config.p_liked else menu
                dishes.append(rng.choice(pool))
            photos = [new_photo(d, user) for d in dishes]
            sents = [
                (rng.choice(DISH_TEMPLATES).format(dish=DISHES[d][0], adj=rng.choice(user["adjectives"])), DISHES[d][0])
                for d in dict.fromkeys(dishes)
            ]
            sents += [(f, None) for f in rng.sample(FILLERS, rng.randint(1, 2))]
            rng.shuffle(sents)
            rid = f"R{uid[1:]}{k}"
            sentences_gt[rid] = [{"text": s, "dish": dish} for s, dish in sents]
            records.append(dict(review_id=rid, user_id=uid, business_id=bid, rating=rng.choice([4, 5]),
                                review_text=" ".join(s for s, _ in sents), pics=photos))

    # Records the filters must drop: short text, too many photos, one-review users, expired photo URLs.
    bad_user = {"likes": [0], "table": 0, "adjectives": ["good", "good"]}
    for j in range(3):
        records.append(dict(review_id=f"RS{j}", user_id=f"U{j:04d}", business_id=bids[j], rating=3,
                            review_text="Good food.", pics=[new_photo(0, bad_user)]))
        records.append(dict(review_id=f"RM{j}", user_id=f"U{j + 3:04d}", business_id=bids[j], rating=3,
                            review_text="So many dishes to photograph here today.",
                            pics=[new_photo(j, bad_user) for _ in range(11)]))
        records.append(dict(review_id=f"RO{j}", user_id=f"UX{j}", business_id=bids[j], rating=5,
                            review_text="The only review this user ever wrote.", pics=[new_photo(1, bad_user)]))
        records.append(dict(review_id=f"RE{j}", user_id=f"U{j + 6:04d}", business_id=bids[j], rating=4,
                            review_text="The photos of this review have expired.", pics=[f"AF1QipGONE{j:04d}"]))
    for r in records:
        r["business_name"] = names[r["business_id"]]
    for i, r in enumerate(records):  # half the records use the {"url": [...]} shape of `pics`
        if i % 2:
            r["pics"] = [{"url": [f"https://lh5.googleusercontent.com/p/{p}=w150-h150-k-no-p"]} for p in r["pics"]]

    by_user: dict[str, list[dict]] = {}
    for r in records:
        by_user.setdefault(r["user_id"], []).append(r)
    for r in records:
        r["history_reviews"] = [[o["review_id"], o["review_text"]] for o in by_user[r["user_id"]] if o is not r]
    order = sorted(by_user)
    rng.shuffle(order)
    n = len(order)
    split_of = {u: "train" if i < 0.8 * n else "val" if i < 0.9 * n else "test" for i, u in enumerate(order)}
    data = {s: [r for r in records if split_of[r["user_id"]] == s] for s in ("train", "val", "test")}
    atomic_write_text(out / "filter_all_t.json", json.dumps(data))
    truth = {
        "config": config.__dict__,
        "dishes": [{"name": n_, "shape": s, "colour": c, "texture": t} for n_, s, c, t in DISHES],
        "photos": photo_dish,
        "users": {u: {"likes": [DISHES[d][0] for d in v["likes"]], "table": v["table"],
                      "adjectives": v["adjectives"]} for u, v in users.items()},
        "businesses": {b: [DISHES[d][0] for d in m] for b, m in businesses.items()},
        "business_names": names,
        "sentences": sentences_gt,
    }
    atomic_write_text(out / "world.json", json.dumps(truth, indent=1))
    return out
