"""`showcase serve` on 127.0.0.1: the JSON API answers what generate_showcase returns, bad requests are refused,
concurrent requests are bounded, and the viewer page works in headless Chromium."""
import argparse
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from showcase.api.server import MAX_K, MAX_RESULTS, ShowcaseServer, ShowcaseService, add_arguments


@pytest.fixture(scope="module")
def service(demo_dir):
    return ShowcaseService.load(demo_dir / "pipeline")


@pytest.fixture(scope="module")
def server(service):
    server = ShowcaseServer(service, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pair(service):
    ds = service.showcaser.dataset
    review = next(r for r in ds.split("test") if len(ds.business_photos(r.business_id)) > 3)
    return review.user_id, review.business_id


def get(server, path, host=None):
    request = urllib.request.Request(server.url.rstrip("/") + path)
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_loopback_by_default():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--pipeline", "p"])
    assert args.host == "127.0.0.1"


def test_json_is_what_generate_showcase_returns(server, service, pair):
    status, body, headers = get(server, f"/api/showcase?user={pair[0]}&business={pair[1]}&k=3")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    data = json.loads(body)
    expected = service.showcaser.generate_showcase(*pair, k=3)
    assert [p["photo_id"] for p in data["photos"]] == [p.photo_id for p in expected.photos]
    assert data["text"] == expected.text and data["user_id"] == pair[0] and data["business_id"] == pair[1]
    assert all(p["url"].startswith("/photo/") and "path" not in p for p in data["photos"])  # no server paths
    ranks = [p["rank_text"] for p in data["explanation"]["photos"]]
    assert all(" of " in r for r in ranks) and data["explanation"]["scorer"] == "classifier"
    photo_status, photo, photo_headers = get(server, data["photos"][0]["url"])
    assert photo_status == 200 and photo_headers["Content-Type"] == "image/jpeg" and photo[:2] == b"\xff\xd8"


def test_bad_requests_are_refused(server, pair):
    user, business = pair
    assert get(server, f"/api/showcase?user={user}&business={business}&k={MAX_K + 1}")[0] == 400
    assert get(server, f"/api/showcase?user={user}&business={business}&k=0")[0] == 400
    assert get(server, f"/api/showcase?user={user}&business={business}&k=three")[0] == 400
    assert get(server, f"/api/showcase?user={user}")[0] == 400
    status, body, _ = get(server, f"/api/showcase?user={user}&business=no-such-business")
    assert status == 404 and "no-such-business" in json.loads(body)["error"]
    assert get(server, "/photo/..%2F..%2Fetc%2Fpasswd")[0] == 404
    assert get(server, "/api/users?q=U", host="evil.example:80")[0] == 403  # DNS rebinding
    assert get(server, "/nothing-here")[0] == 404


def test_search_is_bounded_and_by_prefix(server, service):
    status, body, _ = get(server, "/api/users?q=")
    users = json.loads(body)
    assert status == 200 and 0 < len(users) <= MAX_RESULTS
    prefix = users[0]["id"][:2].lower()
    found = json.loads(get(server, f"/api/users?q={prefix}")[1])
    assert found and all(u["id"].lower().startswith(prefix) for u in found)
    business = service.showcaser.dataset.businesses[0]
    assert business in [b["id"] for b in json.loads(get(server, f"/api/businesses?q={business}")[1])]


def test_concurrent_requests_are_bounded(service, pair):
    """12 clients at once against 3 waiting slots: every answer is the showcase or a 503 'busy', never an error,
    and every showcase is identical to a single call's."""
    bounded = ShowcaseService(service.showcaser, service.explainer, max_waiting=3)
    server = ShowcaseServer(bounded, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = f"/api/showcase?user={pair[0]}&business={pair[1]}&k=3"
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: get(server, path), range(12)))
    finally:
        server.shutdown()
        server.server_close()
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 3
    texts = {json.loads(body)["text"] for status, body, _ in answers if status == 200}
    assert len(texts) == 1
    busy = [headers for status, _, headers in answers if status == 503]
    assert all(h.get("Retry-After") == "1" for h in busy)


def test_viewer_in_headless_chromium(server, pair, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1100, 1000)
    browser.get(server.url)
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#user-options option")) > 0)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#user-options option")) <= MAX_RESULTS
    browser.find_element(By.ID, "user").send_keys(pair[0])
    browser.find_element(By.ID, "business").send_keys(pair[1])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#card .card .photos img")))
    images = browser.find_elements(By.CSS_SELECTOR, "#card .photos img.main")
    assert len(images) == 3
    wait.until(lambda b: all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                             for i in images))
    ranks = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#card .rank")]
    assert all("ranked" in r and " of " in r for r in ranks)
    assert browser.find_element(By.CSS_SELECTOR, "#card .text").text.strip()
    assert "done in" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(tmp_path / "viewer.png"))
    # an unknown business shows the server's message, not a broken card
    browser.find_element(By.ID, "business").clear()
    browser.find_element(By.ID, "business").send_keys("no-such-business")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: "error" in b.find_element(By.ID, "status").text)
    assert "no-such-business" in browser.find_element(By.ID, "status").text
