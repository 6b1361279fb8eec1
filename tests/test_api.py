"""generate_showcase on the demo pipeline (tiny configs, one epoch each), its edge cases, and its HTML page."""
import json

import pytest

from showcase.api import Showcase, Showcaser, ShowcasePhoto, generate_showcase, generate_showcases
from showcase.cli import main


@pytest.fixture(scope="session")
def showcaser(demo_dir):
    return Showcaser.load(demo_dir / "pipeline")


@pytest.fixture(scope="session")
def known_pair(showcaser):
    review = next(r for r in showcaser.dataset.split("test") if len(showcaser.dataset.business_photos(r.business_id)) > 3)
    return review.user_id, review.business_id


def test_demo_wrote_pages_and_resumes(demo_dir, capsys):
    pages = json.loads((demo_dir / "showcases.json").read_text())
    assert len(pages) == 3 and all((demo_dir / href).is_file() for href, *_ in pages)
    index = (demo_dir / "index.html").read_text()
    assert all(href in index for href, *_ in pages)
    assert main(["demo", "--quick", "--output", str(demo_dir), "--showcases", "3"]) == 0  # second run: all reused
    out = capsys.readouterr().out
    assert out.count("done earlier, skipped") >= 10


def test_known_pair(showcaser, known_pair):
    user, business = known_pair
    result = showcaser.generate_showcase(user, business, k=3)
    pool = set(showcaser.dataset.business_photos(business))
    assert len(result.photos) == 3 and len({p.photo_id for p in result.photos}) == 3
    assert {p.photo_id for p in result.photos} <= pool
    assert all(p.path is not None and p.path.is_file() for p in result.photos)
    assert result.text.strip() and not result.cold_start
    assert result.user_id == user and result.business_id == business


def test_same_seed_same_showcase_across_loads(demo_dir, showcaser, known_pair):
    again = Showcaser.load(demo_dir / "pipeline")
    a, b = showcaser.generate_showcase(*known_pair, seed=3), again.generate_showcase(*known_pair, seed=3)
    assert [p.photo_id for p in a.photos] == [p.photo_id for p in b.photos] and a.text == b.text
    one_call = generate_showcase(*known_pair, pipeline=demo_dir / "pipeline", seed=3)
    assert one_call.text == a.text
    assert generate_showcases([known_pair], pipeline=demo_dir / "pipeline", seed=3)[0].text == a.text


def test_batch_equals_single_calls(showcaser):
    pairs = [(r.user_id, r.business_id) for r in showcaser.dataset.split("test")[:5]]
    batch = showcaser.generate_showcases(pairs)
    single = [showcaser.generate_showcase(u, b) for u, b in pairs]
    assert [[p.photo_id for p in s.photos] for s in batch] == [[p.photo_id for p in s.photos] for s in single]
    assert [s.text for s in batch] == [s.text for s in single]


def test_cold_start_user_gets_group_showcase(showcaser, known_pair):
    _, business = known_pair
    result = showcaser.generate_showcase("a-user-never-seen", business)
    assert result.cold_start and any("cold start" in n for n in result.notes)
    assert len(result.photos) == 3 and {p.photo_id for p in result.photos} <= set(showcaser.dataset.business_photos(business))
    assert result.text.strip()


def test_unknown_business_is_a_key_error_naming_it(showcaser, known_pair):
    with pytest.raises(KeyError, match="no-such-business"):
        showcaser.generate_showcase(known_pair[0], "no-such-business")


def test_small_pool_returns_what_it_has(showcaser, known_pair):
    user, business = known_pair
    ds = showcaser.dataset
    keep = next(r for r in ds if r.business_id == business and len(r.photos) <= 2)
    reviews = [r for r in ds if r.business_id != business] + [keep]
    small = Showcaser(ds.with_reviews(reviews), showcaser.store, showcaser.selector, showcaser.generator)
    result = small.generate_showcase(user, business, k=3)
    assert [p.photo_id for p in result.photos] and {p.photo_id for p in result.photos} == set(keep.photos)
    assert any("fewer than k" in n for n in result.notes)


def test_html_escapes_review_text(tmp_path):
    evil = Showcase("u<1>", "b&2", [ShowcasePhoto("p1", None, 0.5)], "<script>alert('x')</script> & more")
    page = evil.to_html()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page and "u&lt;1&gt;" in page
    with pytest.raises(ValueError, match="use .html"):
        evil.save(tmp_path / "x.txt")


def test_page_in_headless_chromium(showcaser, known_pair, tmp_path, browser):
    from selenium.webdriver.common.by import By

    result = showcaser.generate_showcase(*known_pair)
    result.text = "<script>window.pwned = 1</script> " + result.text  # as if a review had carried markup
    page = result.save(tmp_path / "card.html")
    result.save(tmp_path / "card.png")
    browser.get(page.as_uri())
    images = browser.find_elements(By.CSS_SELECTOR, ".photos img.main")
    assert len(images) == 3
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in images)
    assert [f.get_attribute("data-photo-id") for f in browser.find_elements(By.CSS_SELECTOR, "figure")] == [
        p.photo_id for p in result.photos]
    assert browser.find_element(By.CSS_SELECTOR, ".text").text == result.text
    assert browser.execute_script("return window.pwned") is None
    browser.save_screenshot(str(tmp_path / "card-screenshot.png"))
    assert (tmp_path / "card-screenshot.png").stat().st_size > 1000
