"""generate_showcase on the demo pipeline (tiny configs, one epoch each), its edge cases, and its HTML page."""
import json

import pytest

from showcase.api import Showcase, ShowcasePhoto, Showcaser, generate_showcase, generate_showcases
from showcase.cli import main


@pytest.fixture(scope="session")
def showcaser(demo_dir):
    return Showcaser.load(demo_dir / "pipeline")


@pytest.fixture(scope="session")
def known_pair(showcaser):
    review = next(r for r in showcaser.dataset.split("test")
                  if len(showcaser.dataset.business_photos(r.business_id)) > 3)
    return review.user_id, review.business_id


def test_demo_wrote_pages_and_resumes(demo_dir, capsys):
    for name in ("classifier", "selector", "generator"):  # fit and test each keep their metrics.csv
        assert (demo_dir / "models" / name / "run" / "metrics.csv").is_file(), name
        assert (demo_dir / "models" / name / "test" / "metrics.csv").is_file(), name
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
    assert len(result.photos) == 3
    assert {p.photo_id for p in result.photos} <= set(showcaser.dataset.business_photos(business))
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
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
               for i in images)
    assert [f.get_attribute("data-photo-id") for f in browser.find_elements(By.CSS_SELECTOR, "figure")] == [
        p.photo_id for p in result.photos]
    assert browser.find_element(By.CSS_SELECTOR, ".text").text == result.text
    assert browser.execute_script("return window.pwned") is None
    browser.save_screenshot(str(tmp_path / "card-screenshot.png"))
    assert (tmp_path / "card-screenshot.png").stat().st_size > 1000


# --- served == tested ----------------------------------------------------------------------------------------------
def test_served_text_equals_the_generator_test_run(demo_dir, showcaser):
    """Each test example's photos through the API give exactly the text the generator's test run wrote."""
    predictions = [json.loads(line) for line in
                   (demo_dir / "models" / "generator" / "test" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == len(showcaser.dataset.split("test"))
    served = showcaser.generate_showcases(
        [(p["user_id"], p["business_id"]) for p in predictions],
        photos=[list(showcaser.dataset.review(p["id"]).photos) for p in predictions])
    same = sum(s.text == p["text"] for s, p in zip(served, predictions))
    print(f"\nserved text == tested text: {same} of {len(predictions)}")
    assert same == len(predictions)
    assert all(not s.cold_start for s in served)


def test_served_relevance_equals_the_selector_test_run(showcaser):
    """The selector's relevance of every pool photo through the API equals the relevance its test step computes."""
    import torch

    from showcase.data import ShowcaseDataset
    from showcase.selection.data import SelectionDataModule

    selector = showcaser.selector
    dataset = ShowcaseDataset.load(selector.export_info["data"]["dataset"])  # what the selector was tested on
    limits = selector.input_limits
    dm = SelectionDataModule("-", "-", max_history_texts=limits["history_texts"],
                             max_history_photos=limits["history_photos"]).attach(dataset, showcaser.store)
    batch = next(iter(dm.test_dataloader()))  # the test step's batch (all of the test split)
    examples = dm.splits["test"].examples
    assert len(examples) == len(batch["user_ids"]) > 10
    with torch.no_grad():
        tested = selector.scores(batch)  # (B, N)
    api = Showcaser(dataset, showcaser.store, selector, showcaser.generator)
    served = api.generate_showcases([(e.user_id, e.business_id) for e in examples],
                                    photos=[dataset.business_photos(e.business_id) for e in examples])
    close = sum(torch.allclose(torch.tensor([p.relevance for p in s.photos]), tested[b, : len(e.pool)], rtol=1e-5,
                               atol=0) for b, (s, e) in enumerate(zip(served, examples)))
    print(f"\nserved relevance == tested relevance (rtol 1e-5): {close} of {len(examples)}")
    assert close == len(examples)


def test_pipeline_refuses_a_store_of_another_encoder(demo_dir, tmp_path):
    import shutil

    from showcase.errors import UserError

    pipeline = tmp_path / "pipeline"
    shutil.copytree(demo_dir / "pipeline", pipeline)
    meta_path = pipeline / "store" / "encoder.json"
    meta = json.loads(meta_path.read_text())
    meta["fingerprint"] = {**meta.get("fingerprint", {}), "seed": 7}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="trained on features of showcase-tiny .*seed 0.* holds features of "
                                        "showcase-tiny .*seed 7.*--allow-encoder-mismatch"):
        Showcaser.load(pipeline)
    assert Showcaser.load(pipeline, allow_encoder_mismatch=True).generate_showcase("anyone", "B000").text.strip()


def test_exports_load_as_their_class_with_a_card(demo_dir):
    from showcase import load_model
    from showcase.distill.model import SentenceImageClassifier
    from showcase.generation.model import ExplanationGenerator
    from showcase.selection import DPPSelector

    models = demo_dir / "models"
    for name, cls in (("classifier", SentenceImageClassifier), ("selector", DPPSelector),
                      ("generator", ExplanationGenerator)):
        folder = models / name / "run" / "model"
        model = load_model(folder)
        assert isinstance(model, cls) and model.encoder_fingerprint["model"] == "showcase-tiny"
        card = (folder / "README.md").read_text()
        assert "## Encoder" in card and "showcase-tiny" in card and "## Test metrics" in card
        assert "not tested yet" not in card, name  # `showcase test` wrote its metrics into the card
    generator = load_model(models / "generator" / "run" / "model")
    assert generator.decoding == {"num_beams": 2, "max_new_tokens": 40}  # configs/generator_tiny.yaml's


# --- showcase predict ------------------------------------------------------------------------------------------------
def _same_showcases(a, b):
    """Same lines: equal texts and photos; relevance equal up to float rounding (batches of other shapes)."""
    a, b = ([json.loads(line) for line in p.read_text().splitlines()] for p in (a, b))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        rel_x, rel_y = [p.pop("relevance") for p in x["photos"]], [p.pop("relevance") for p in y["photos"]]
        assert x == y and rel_x == pytest.approx(rel_y, rel=1e-5)


def _pairs_file(showcaser, path, n=7):
    test = showcaser.dataset.split("test")[:n]
    lines = [{"user_id": r.user_id, "business_id": r.business_id} for r in test]
    lines.append({"user_id": "a-user-never-seen", "business_id": test[0].business_id, "photos": list(test[0].photos)})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return lines


def test_predict_writes_showcases_in_input_order_and_resumes(demo_dir, showcaser, tmp_path, capsys):
    lines = _pairs_file(showcaser, tmp_path / "pairs.jsonl")
    args = ["predict", "--pipeline", str(demo_dir / "pipeline"), "--pairs", str(tmp_path / "pairs.jsonl"),
            "--batch-size", "3", "--no-progress"]
    assert main([*args, "--output", str(tmp_path / "one.jsonl")]) == 0
    written = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    expected = showcaser.generate_showcases([(x["user_id"], x["business_id"]) for x in lines],
                                            photos=[x.get("photos") for x in lines])
    assert [(w["user_id"], w["business_id"], w["text"]) for w in written] == [
        (s.user_id, s.business_id, s.text) for s in expected]
    assert [[p["photo_id"] for p in w["photos"]] for w in written] == [[p.photo_id for p in s.photos] for s in expected]
    assert written[-1]["cold_start"] and [p["photo_id"] for p in written[-1]["photos"]] == lines[-1]["photos"]
    # resume: a killed run left a journal with two finished pairs (one torn line); only the others are computed
    journal = tmp_path / "again.jsonl.part-0"
    journal.write_text("".join(json.dumps({"index": i, **written[i]}) + "\n" for i in (0, 5)) + '{"index": 1, "us')
    assert main([*args, "--output", str(tmp_path / "again.jsonl")]) == 0
    assert "2 done before, 6 now" in capsys.readouterr().out
    _same_showcases(tmp_path / "again.jsonl", tmp_path / "one.jsonl")
    assert not journal.exists()


def test_predict_on_two_gloo_processes_merges_in_input_order(demo_dir, showcaser, tmp_path):
    _pairs_file(showcaser, tmp_path / "pairs.jsonl")
    args = ["predict", "--pipeline", str(demo_dir / "pipeline"), "--pairs", str(tmp_path / "pairs.jsonl"),
            "--batch-size", "2", "--no-progress"]
    assert main([*args, "--output", str(tmp_path / "one.jsonl")]) == 0
    assert main([*args, "--output", str(tmp_path / "two.jsonl"), "--devices", "2"]) == 0
    _same_showcases(tmp_path / "two.jsonl", tmp_path / "one.jsonl")


def test_predict_names_the_bad_line(demo_dir, tmp_path, user_error):
    (tmp_path / "pairs.jsonl").write_text('{"user_id": "U1", "business_id": "B1"}\n{"user_id": "U1"}\n')
    line = user_error(["predict", "--pipeline", str(demo_dir / "pipeline"), "--pairs", str(tmp_path / "pairs.jsonl"),
                       "--output", str(tmp_path / "out.jsonl")], r"pairs.jsonl:2: missing or non-string business_id")
    assert line.startswith("showcase predict: error: ")
    assert not (tmp_path / "out.jsonl").exists()  # nothing written for a bad pairs file


def test_distill_and_metrics_refuse_another_encoder(demo_dir, tmp_path, user_error):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(demo_dir / "store", store)
    meta = json.loads((store / "encoder.json").read_text())
    meta["spec"]["seed"] = meta["fingerprint"]["seed"] = 3
    (store / "encoder.json").write_text(json.dumps(meta))
    classifier = demo_dir / "models" / "classifier" / "run" / "model"
    distill = ["distill", "--dataset", str(demo_dir / "dataset"), "--store", str(store), "--classifier",
               str(classifier), "--output", str(tmp_path / "s2")]
    user_error(distill, r"trained on features of showcase-tiny \(random init, seed 0\).*seed 3")
    generated = demo_dir / "models" / "generator" / "test"
    metrics = ["metrics", "--predictions", str(generated / "predictions.jsonl"), "--references",
               str(generated / "references.jsonl"), "--metrics", "clip_align", "--classifier", str(classifier),
               "--images", str(demo_dir / "world" / "photos")]
    from showcase.encoders import load_clip

    load_clip("showcase-tiny", seed=3).save(tmp_path / "clip-seed3")
    user_error([*metrics, "--clip", str(tmp_path / "clip-seed3")],
               r"the given CLIP encoder holds features of showcase-tiny \(random init, seed 3\), width 64.*"
               r"--allow-encoder-mismatch")
    assert main([*metrics, "--clip", str(demo_dir / "store" / "encoder")]) == 0  # the right encoder passes
