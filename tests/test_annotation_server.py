"""The labelling server: its HTTP API without a browser, then the page itself in headless Chromium.

The browser test needs Debian's `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`) and
the `selenium` package; it is skipped, saying so, when they are missing.
"""
from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from annotation.cli import main as annotate_main
from annotation.labels import NO, SKIP, YES, LabelFileLocked, LabelLog, PairKey, effective_labels, read_events
from annotation.server import AnnotationServer, open_session
from showcase.distill.pairs import LabeledPair, write_pairs

TRICKY = "<img src=x onerror=\"document.title='pwned'\">Tasty & <b>bold</b> \"ramen\""
PAIRS = [PairKey("r0", "The miso ramen was rich.", "p0"), PairKey("r0", "Parking was easy.", "p0"),
         PairKey("r1", "Gyoza, crisp and hot.", "p1"), PairKey("r1", TRICKY, "p1"),
         PairKey("r2", "Great service.", "missing")]


@pytest.fixture
def world(tmp_path):
    """Pairs file, photos folder (with a file outside it to steal), labels path."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate(("red", "green")):
        Image.new("RGB", (32, 24), colour).save(photos / f"p{i}.jpg")
    (tmp_path / "secret.txt").write_text("not yours")
    (photos / "link.jpg").symlink_to(tmp_path / "secret.txt")
    write_pairs(tmp_path / "pairs.jsonl", [LabeledPair(*k) for k in PAIRS])
    return tmp_path


class Running:
    """An `AnnotationServer` serving in a thread; `request` speaks HTTP to it."""

    def __init__(self, root: Path, annotator: str = "alice"):
        self.labels = root / f"{annotator}.jsonl"
        self.session = open_session(root / "pairs.jsonl", self.labels, annotator, root / "photos")
        self.server = AnnotationServer(self.session)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, data, {**hdrs, **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        ctype = response.getheader("Content-Type", "")
        return response.status, (json.loads(payload) if ctype.startswith("application/json") else payload), response

    def label(self, key: PairKey, label: str):
        return self.request("POST", "/api/label", {**key._asdict(), "label": label})

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.session.log.close()


@pytest.fixture
def running(world):
    server = Running(world)
    yield server
    server.close()


def test_api_labels_undo_resume(world, running):
    status, page, response = running.request("GET", "/")
    assert status == 200 and b"/page.js" in page
    assert "script-src 'self'" in response.getheader("Content-Security-Policy")
    status, state, _ = running.request("GET", "/api/state")
    assert (status, state["done"], state["total"], state["can_undo"]) == (200, 0, 5, False)
    assert state["pair"]["index"] == 0 and state["pair"]["photo_url"] == "/photo/p0"
    _, state, _ = running.label(PAIRS[0], "yes")
    _, state, _ = running.label(PAIRS[1], "no")
    assert (state["done"], state["yes"], state["no"], state["pair"]["index"]) == (2, 1, 1, 2)
    status, body, _ = running.label(PAIRS[0], "no")  # a stale tab labels a pair that is no longer current
    assert status == 409 and body["state"]["pair"]["index"] == 2
    _, state, _ = running.request("POST", "/api/undo", {})
    assert state["done"] == 1 and state["pair"]["sentence"] == PAIRS[1].sentence
    running.label(PAIRS[1], "skip")
    _, state, _ = running.label(PAIRS[2], "yes")
    assert state["pair"]["sentence"] == TRICKY  # raw text in JSON; the page sets it with textContent
    running.close()
    # every answer was preceded by an fsynced append: a new server (a crash, a closed tab) resumes there
    assert effective_labels(read_events(running.labels)) == {PAIRS[0]: YES, PAIRS[1]: SKIP, PAIRS[2]: YES}
    again = Running(world)
    try:
        _, state, _ = again.request("GET", "/api/state")
        assert state["done"] == 3 and state["pair"]["index"] == 3 and state["can_undo"]
        _, state, _ = again.label(PAIRS[3], "no")
        assert state["pair"]["photo_url"] is None  # photo "missing" is not in the folder: the page says so
        _, state, _ = again.label(PAIRS[4], "no")
        assert state["pair"] is None and state["done"] == 5
        status, body, _ = again.label(PAIRS[4], "yes")
        assert status == 409
    finally:
        again.close()


def test_photos_only_from_the_folder(running):
    status, body, response = running.request("GET", "/photo/p1")
    assert status == 200 and response.getheader("Content-Type") == "image/jpeg" and body[:2] == b"\xff\xd8"
    for path in ("/photo/..%2Fsecret.txt", "/photo/../secret.txt", "/photo/%2Fetc%2Fpasswd", "/photo/link",
                 "/photo/nope", "/secret.txt", "/photo/%00"):
        status, body, _ = running.request("GET", path)
        assert status == 404 and b"not yours" not in json.dumps(body).encode(), path


def test_refuses_bad_requests(running):
    status, _, _ = running.request("GET", "/api/state", headers={"Host": "evil.example:80"})
    assert status == 403  # DNS rebinding
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    conn.request("POST", "/api/label", "label=yes", {"Content-Type": "application/x-www-form-urlencoded"})
    assert conn.getresponse().status == 415  # a cross-site form cannot post labels
    conn.close()
    assert running.request("POST", "/api/label", {"review_id": "r0", "label": "yes"})[0] == 400
    assert running.request("POST", "/api/label", {**PAIRS[0]._asdict(), "label": "maybe"})[0] == 400
    assert running.request("POST", "/api/nothing", {})[0] == 404
    assert read_events(running.labels) == []
    assert running.server.server_address[0] == "127.0.0.1"


def test_concurrent_requests_label_once(running):
    with ThreadPoolExecutor(8) as pool:  # a key held down / many tabs: one label, the rest refused
        codes = list(pool.map(lambda _: running.label(PAIRS[0], "yes")[0], range(16)))
    assert sorted(codes) == [200] + [409] * 15 and len(read_events(running.labels)) == 1


def test_second_server_on_same_file_is_refused(world, running, capsys):
    args = ["--pairs", str(world / "pairs.jsonl"), "--labels", str(running.labels), "--annotator", "alice"]
    assert annotate_main(args) == 2
    assert "already being labelled" in capsys.readouterr().err
    assert annotate_main(["--pairs", str(world / "pairs.jsonl")]) == 2
    assert "--labels --annotator required" in capsys.readouterr().err
    other = Running(world, "bob")  # another annotator, another file: both serve at once
    other.close()


def test_command_line_serves_and_releases_lock_on_sigterm(world):
    labels = world / "carol.jsonl"
    cmd = [sys.executable, "-m", "annotation.cli", "--pairs", str(world / "pairs.jsonl"), "--labels", str(labels),
           "--annotator", "carol", "--port", "0"]  # --photos defaults to photos/ beside the pairs file
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "labelling 5 pairs as 'carol' (0 done)" in lines[0], lines
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", lines[1])
        assert url and (world / "carol.jsonl.lock").exists()
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=10)
        conn.request("GET", "/api/state")
        state = json.loads(conn.getresponse().read())
        assert state["annotator"] == "carol" and state["pair"]["photo_url"] == "/photo/p0"
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    assert not (world / "carol.jsonl.lock").exists()


# --- the page in headless Chromium -----------------------------------------------------------------------------------
def test_page_in_headless_chromium(world, running, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def progress(done: int) -> None:
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "progress").text == f"{done} of 5")

    def key(k: str, done: int) -> None:
        browser.find_element(By.TAG_NAME, "body").send_keys(k)
        progress(done)

    def click(button: str, done: int) -> None:
        browser.find_element(By.ID, button).click()
        progress(done)

    def sentence() -> str:
        return browser.find_element(By.ID, "sentence").get_property("textContent")

    browser.get(f"http://127.0.0.1:{running.port}/")
    progress(0)
    assert sentence() == PAIRS[0].sentence and browser.find_element(By.ID, "annotator").text == "alice"
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const i = document.getElementById('photo'); return i.complete && i.naturalWidth === 32;"))
    assert browser.find_element(By.ID, "undo").get_property("disabled")
    click("yes", 1)
    key("n", 2)
    key("s", 3)
    click("undo", 2)
    assert sentence() == PAIRS[2].sentence
    key("y", 3)
    key(Keys.BACKSPACE, 2)
    key("u", 1)
    assert sentence() == PAIRS[1].sentence
    key("n", 2)
    key("y", 3)
    assert sentence() == TRICKY  # shown as text: no element injected, no script ran
    assert not browser.find_elements(By.CSS_SELECTOR, "#sentence *") and browser.title != "pwned"
    browser.refresh()  # resume where the annotator left off
    progress(3)
    assert sentence() == TRICKY and browser.find_element(By.ID, "review").text == "r1"
    click("no", 4)
    assert "not available" in browser.find_element(By.ID, "nophoto").text  # photo "missing"
    key("s", 5)
    assert browser.find_element(By.ID, "finished").is_displayed()
    assert not browser.find_element(By.ID, "task").is_displayed()
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")
    events = read_events(running.labels)
    assert [e.event for e in events] == ["label", "label", "skip", "undo", "label", "undo", "undo",
                                         "label", "label", "label", "skip"]
    assert effective_labels(events) == {PAIRS[0]: YES, PAIRS[1]: NO, PAIRS[2]: YES, PAIRS[3]: NO, PAIRS[4]: SKIP}
    with pytest.raises(LabelFileLocked):  # the server still holds the file
        LabelLog.open(running.labels, "alice")
