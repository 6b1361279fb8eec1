"""The demo's report page: the paper's tables with their units, Fig. 6 embedded, a card per thumbnail, timings;
rendered in headless Chromium."""
import json

from showcase.demo_report import selection_table, text_table


def test_units_nist_is_a_score_not_a_percent():
    table = text_table({"generated": {"bleu1": 9.7, "nist": 18.9}, "ground truth": {"bleu1": 100.0, "nist": 815.44}})
    assert "<th>NIST<span class=unit>score</span></th>" in table and "<th>BLEU-1<span class=unit>%</span></th>" in table
    assert ">0.19<" in table and ">8.15<" in table and "815" not in table  # the CLI's JSON is 100 x the score
    assert "GT (reference vs itself)" in table
    rows = selection_table({"random": {"Prec@3": 0.0487, "Div@3": 0.3024}})
    assert ">4.87<" in rows and ">30.24<" in rows


def test_report_lists_steps_tables_figures_and_cards(demo_dir):
    page = (demo_dir / "index.html").read_text()
    pages = json.loads((demo_dir / "showcases.json").read_text())
    assert all(f'href="{href}"' in page for href, *_ in pages)
    assert all((demo_dir / href).with_suffix(".png").is_file() for href, *_ in pages)
    for heading in ("Table 2", "Table 3", "Fig. 6", "What ran"):
        assert heading in page
    assert page.count("data:image/png;base64,") == 2  # both Fig. 6 plots inline
    assert "random" in page and "img+text DPP (ours)" in page
    marker = json.loads((demo_dir / ".steps" / "generator.done").read_text())
    assert marker["seconds"] > 0 and marker["cpu_seconds"] > 0


def test_report_renders_in_headless_chromium(demo_dir, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1200, 1600)
    browser.get((demo_dir / "index.html").as_uri())
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 2 + 3  # two plots, three card thumbnails
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
               for i in images)
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "table th")]
    assert any(h.startswith("NIST") and "score" in h for h in headers)
    thumbs = browser.find_elements(By.CSS_SELECTOR, "a.thumb")
    assert len(thumbs) == 3
    thumbs[0].click()
    assert browser.find_elements(By.CSS_SELECTOR, ".card .photos img.main")
    browser.back()
    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
