"""Every bad input gets one clear line and exit status 2, and leaves the disk as it was.

`CASES` is the table: one row per (command, class of bad input). A row names the command line (built from the
case's workspace), an optional `setup` that writes the bad input into the workspace, the expected exit status and a
regex the one stderr line must match. Each case runs in a fresh workspace; the test snapshots it (every file's
bytes and mode) after `setup` and checks that the command changed nothing. Adding a case is one `Case(...)` line.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from showcase.cli import main
from showcase.errors import UserError, run_reporting_errors, user_message

ROOT = Path(__file__).resolve().parents[1]
Argv = Callable[["Workspace"], list[str]]


# --- the workspace a case runs in ----------------------------------------------------------------------------------
@dataclass
class Workspace:
    """A case's folder, and the shared (read-only) fixtures it may point at."""

    root: Path
    shared: dict[str, Any]

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def pipeline(self) -> Path:
        """A pipeline folder of its own: selector and generator copied in, dataset and store shared (absolute)."""
        folder = self.root / "pipeline"
        for part in ("selector", "generator"):
            shutil.copytree(self.shared[part], folder / part)
        index = {"dataset": str(self.shared["dataset"]), "store": str(self.shared["store"]),
                 "selector": "selector", "generator": "generator"}
        self.write("pipeline/pipeline.json", json.dumps(index, indent=2))
        return folder


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Mode and content hash of every file and folder under `folder`."""
    out = {}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(folder))] = (path.lstat().st_mode, digest)
    return out


# --- the table -----------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One row: `argv(ws)` after `setup(ws)` exits with `code`, printing one stderr line matching `message`."""

    id: str
    argv: Argv
    message: str
    setup: Callable[[Workspace], object] | None = None
    code: int = 2
    subprocess: bool = False  # run `python -m ...` for real (the entry points themselves)
    known_bug: str = ""  # a known shortfall, kept as a strict xfail until fixed


def _generate(*extra: str) -> Argv:
    return lambda ws: ["generate", "--pipeline", str(ws / "pipeline"), "--user", "U0000",
                       "--business", ws.shared["business"], *extra]


def _prepare(*extra: str) -> Argv:
    return lambda ws: ["prepare", "--input", str(ws / "in.jsonl"), "--photos", str(ws / "photos"),
                       "--output", str(ws / "out"), *extra]


GOOD_RECORD = json.dumps({"business_id": "b1", "user_id": "u1", "rating": 5, "pics": ["p1"],
                          "review_text": "The noodles were rich and the broth was deep."}) + "\n"


def prepare_input(data: str | bytes) -> Callable[[Workspace], None]:
    return lambda ws: (ws.write("in.jsonl", data), (ws / "photos").mkdir())


def _metrics(*extra: str) -> Argv:
    return lambda ws: ["metrics", "--predictions", str(ws / "p.jsonl"), "--references", str(ws / "r.jsonl"), *extra]


def _annotate(*extra: str) -> Argv:
    return lambda ws: ["annotate", "--pairs", str(ws / "pairs.jsonl"), "--labels", str(ws / "labels.jsonl"),
                       "--annotator", "alice", *extra]


GOOD_P = '{"id": "1", "text": "the ramen was rich"}\n{"id": "2", "text": "nice patio"}\n'
GOOD_R = '{"id": "1", "text": "rich ramen"}\n{"id": "2", "text": "a nice patio"}\n'
PAIRS = "".join(json.dumps({"review_id": f"r{i}", "sentence": f"sentence {i}", "photo_id": f"p{i}"}) + "\n"
                for i in range(3))


def metrics_files(p: str | bytes = GOOD_P, r: str | bytes = GOOD_R) -> Callable[[Workspace], None]:
    return lambda ws: (ws.write("p.jsonl", p), ws.write("r.jsonl", r))


def pipeline_with(name: str | None = None, edit: Callable[[bytes], bytes] | None = None):
    def setup(ws: Workspace) -> None:
        folder = ws.pipeline()
        if name is not None:
            path = folder / name
            path.write_bytes(edit(path.read_bytes()))
    return setup


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def add_config_key(data: bytes) -> bytes:
    payload = json.loads(data)
    payload["config"]["bogus_width"] = 3
    return json.dumps(payload).encode()


def annotate_files(ws: Workspace) -> None:
    ws.write("pairs.jsonl", PAIRS)


CASES = [
    # showcase (the entry)
    Case("unknown-command", lambda ws: ["frobnicate"], r"^showcase: error: unknown command 'frobnicate'"),
    # LightningCLI commands
    Case("fit-missing-dataset", lambda ws: ["fit", "--config", str(ROOT / "configs" / "selector.yaml"),
                                            "--data.init_args.dataset", str(ws / "no-dataset")],
         r"^showcase fit: error: .*no-dataset: not found: --data\.dataset must be a dataset folder"),
    # showcase generate
    Case("generate-k0", _generate("-k", "0"),
         r"^showcase generate: error: argument -k/--k: must be a whole number >= 1"),
    Case("generate-k1.5", _generate("-k", "1.5"), r"^showcase generate: error: argument -k/--k: .*, got '1\.5'"),
    Case("generate-no-pipeline", _generate(),
         r"^showcase generate: error: .*pipeline\.json: not found: .* not a pipeline"),
    Case("generate-unknown-business", lambda ws: _generate()(ws)[:-1] + ["NOPE"],
         r"^showcase generate: error: .*pipeline\.json: unknown business 'NOPE': it has no review", pipeline_with()),
    Case("generate-bad-output-suffix", _generate("--output", "card.txt"),
         r"--output card\.txt: use a \.html, \.png or \.jpg"),
    Case("generate-truncated-pipeline.json", _generate(), r"pipeline\.json:\d+: not valid JSON .*truncated",
         pipeline_with("pipeline.json", truncate)),
    Case("generate-non-utf8-pipeline.json", _generate(), r"pipeline\.json:\d+: not UTF-8 text \(byte 0xff\)",
         pipeline_with("pipeline.json", lambda b: b.replace(b'"selector"', b'"sel\xffector"', 1))),
    Case("generate-pipeline-missing-part", _generate(), r"pipeline\.json: missing parts \['generator'\]",
         pipeline_with("pipeline.json", lambda b: json.dumps({k: v for k, v in json.loads(b).items()
                                                             if k != "generator"}).encode())),
    Case("generate-truncated-config.json", _generate(), r"generator/config\.json:\d+: not valid JSON",
         pipeline_with("generator/config.json", truncate)),
    Case("generate-unknown-config-key", _generate(),
         r"selector/config\.json: unknown config key\(s\) 'bogus_width' for DPPSelectorConfig",
         pipeline_with("selector/config.json", add_config_key)),
    Case("generate-truncated-safetensors", _generate(), r"generator/model\.safetensors: not a readable safetensors",
         pipeline_with("generator/model.safetensors", truncate)),
    Case("generate-empty-safetensors", _generate(), r"selector/model\.safetensors: not a readable safetensors",
         pipeline_with("selector/model.safetensors", lambda b: b"")),
    # showcase prepare (JSON lines input; the readers are tested in depth in test_prepare_errors.py)
    Case("prepare-empty-input", _prepare(), r"^showcase prepare: error: .*in\.jsonl: .*empty", prepare_input("")),
    Case("prepare-truncated-json", _prepare(), r"in\.jsonl:2: .*JSON", prepare_input(GOOD_RECORD + GOOD_RECORD[:30])),
    Case("prepare-non-utf8", _prepare(), r"in\.jsonl:1: .*UTF-8",
         prepare_input(GOOD_RECORD.encode().replace(b"noodles", b"nood\xffles"))),
    Case("prepare-nan-rating", _prepare(), r"in\.jsonl:1: .*NaN",
         prepare_input(GOOD_RECORD.replace('"rating": 5', '"rating": NaN'))),
    Case("prepare-missing-field", _prepare(), r"in\.jsonl:1: .*user_id",
         prepare_input(GOOD_RECORD.replace('"user_id": "u1", ', ""))),
    Case("prepare-empty-record", _prepare(), r"in\.jsonl:1: ", prepare_input("{}\n")),
    # showcase features
    Case("features-missing-photos-folder", lambda ws: ["features", "--photos", str(ws / "no-photos"),
                                                       "--output", str(ws / "store")],
         r"^showcase features: error: .*no-photos"),
    # showcase metrics / python -m metrics
    Case("metrics-missing-file", _metrics(), r"^showcase metrics: error: .*p\.jsonl: no such file"),
    Case("metrics-non-utf8", _metrics(), r"p\.jsonl:2: not UTF-8 text \(byte 0xff at column \d+\); save the file as",
         metrics_files(p=GOOD_P.encode().replace(b"patio", b"pat\xffo"))),
    Case("metrics-truncated-line", _metrics(), r"r\.jsonl:2: not valid JSON", metrics_files(r=GOOD_R[:-8])),
    Case("metrics-missing-id", _metrics(), r"r\.jsonl: no line for id '2' \(.*p\.jsonl:2\)",
         metrics_files(r=GOOD_R.splitlines()[0])),
    Case("metrics-unknown-metric", _metrics("--metrics", "bleu4,rouge"), r"unknown metric\(s\) rouge",
         metrics_files()),
    Case("metrics-classifier-empty-folder", _metrics("--metrics", "clip_align", "--classifier", "phi"),
         r"phi/config\.json: not found: .* is not a saved model folder",
         lambda ws: (metrics_files()(ws), (ws / "phi").mkdir())),
    Case("metrics-classifier-wrong-model", lambda ws: _metrics("--metrics", "clip_align", "--classifier",
                                                               str(ws.shared["generator"]))(ws),
         r"generator/config\.json: unknown config key\(s\) .* and \d+ more for ClassifierConfig "
         r"\(the folder holds a \S+ExplanationGenerator\)", metrics_files()),
    Case("python-m-metrics-non-utf8", lambda ws: ["--predictions", str(ws / "p.jsonl"), "--references",
                                                  str(ws / "r.jsonl")],
         r"^metrics: error: .*p\.jsonl:1: not UTF-8 text", metrics_files(p=b"\xfe" + GOOD_P.encode()),
         subprocess=True),
    Case("python-m-metrics-usage", lambda ws: ["--references", "r.jsonl"],
         r"^metrics: error: the following arguments are required: --predictions \(see `metrics --help`\)",
         subprocess=True),
    # showcase annotate
    Case("annotate-no-photos", _annotate(), r"no photos to show: give --photos DIR .*or --no-photos", annotate_files),
    Case("annotate-photos-and-no-photos", _annotate("--photos", "pics", "--no-photos"),
         r"either --photos DIR or --no-photos", lambda ws: (annotate_files(ws), (ws / "pics").mkdir())),
    Case("annotate-photos-not-a-folder", _annotate("--photos", "nothing-here"),
         r"nothing-here: --photos: not a folder", annotate_files),
    Case("annotate-missing-pairs", _annotate("--no-photos"), r"pairs file .*pairs\.jsonl not found"),
    Case("annotate-bad-pairs-line", _annotate("--no-photos"), r"pairs\.jsonl:2: invalid JSON",
         lambda ws: ws.write("pairs.jsonl", PAIRS.replace('"r1"', "r1"))),
    Case("annotate-missing-options", lambda ws: ["annotate", "--pairs", "x.jsonl"],
         r"^showcase annotate: error: --labels --annotator required"),
    Case("annotate-agreement-one-file", lambda ws: ["annotate", "--agreement", str(ws / "a.jsonl")],
         r"at least two label files", lambda ws: ws.write("a.jsonl", "")),
]


@pytest.fixture(scope="module")
def shared(dataset_dir, store_dir, tmp_path_factory) -> dict[str, Any]:
    """Untrained tiny selector and generator saved beside the session's dataset and store (a loadable pipeline)."""
    from showcase.data import ShowcaseDataset
    from showcase.encoders import FeatureStore
    from showcase.generation.model import ExplanationGenerator, GeneratorConfig
    from showcase.selection.models import DPPSelector, DPPSelectorConfig

    root = tmp_path_factory.mktemp("failures")
    dim = FeatureStore.open(store_dir).dim
    DPPSelector(DPPSelectorConfig(feature_dim=dim)).save_pretrained(root / "selector")
    ExplanationGenerator(GeneratorConfig.tiny(feature_dim=dim, max_length=32)).save_pretrained(root / "generator")
    business = ShowcaseDataset.load(dataset_dir).businesses[0]
    return {"dataset": dataset_dir, "store": store_dir, "selector": root / "selector",
            "generator": root / "generator", "business": business}


def run_command(case: Case, ws: Workspace) -> tuple[int, str]:
    argv = case.argv(ws)
    if not case.subprocess:
        return main(argv), ""
    module = "metrics" if case.id.startswith("python-m-metrics") else "showcase"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHOWCASE_DEBUG": ""}
    done = subprocess.run([sys.executable, "-m", module, *argv], cwd=ws.root, env=env, capture_output=True,
                          text=True, timeout=300)
    return done.returncode, done.stderr


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.known_bug)] if c.known_bug else [])
    for c in CASES])
def test_bad_input_gives_one_line_and_changes_nothing(case, shared, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHOWCASE_DEBUG", raising=False)
    ws = Workspace(tmp_path, shared)
    if case.setup is not None:
        case.setup(ws)
    before = snapshot(tmp_path)
    code, stderr = run_command(case, ws)
    stderr = stderr or capsys.readouterr().err
    assert code == case.code, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip("\n").splitlines()
    assert len(lines) == 1, stderr
    assert re.search(case.message, lines[0]), lines[0]
    assert snapshot(tmp_path) == before


# --- the entry's rules ---------------------------------------------------------------------------------------------
def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    argv = ["generate", "--pipeline", str(tmp_path / "none"), "--user", "u", "--business", "b"]
    with pytest.raises(UserError, match="not a pipeline folder"):
        main([*argv, "--debug"])
    monkeypatch.setenv("SHOWCASE_DEBUG", "1")
    with pytest.raises(UserError, match="not a pipeline folder"):
        main(argv)


def test_bugs_keep_their_traceback_and_ctrl_c_is_one_line(capsys):
    with pytest.raises(ZeroDivisionError):
        run_reporting_errors("showcase x", lambda: 1 / 0)
    with pytest.raises(FileNotFoundError):  # a file of the package itself missing is a bug, not the user's
        run_reporting_errors("showcase x", lambda: open(ROOT / "showcase" / "no-such-file.json"))

    def interrupted():
        raise KeyboardInterrupt

    assert run_reporting_errors("showcase x", interrupted) == 130
    assert capsys.readouterr().err == "showcase x: interrupted\n"


def test_os_errors_on_user_paths_are_one_line(tmp_path):
    assert user_message(OSError(errno.ENOSPC, "No space left on device", "/data/out.json")) == \
        "/data/out.json: no space left on device"
    assert user_message(OSError(errno.ENOSPC, "No space left on device")).startswith("no space left on device")
    assert user_message(FileNotFoundError("pairs file p.jsonl not found")) == "pairs file p.jsonl not found"
    missing = tmp_path / "missing.json"
    with pytest.raises(FileNotFoundError) as info:
        open(missing)
    assert user_message(info.value) == f"{missing}: no such file or directory"
    assert user_message(UserError("two\nlines", path="f.json", line=3)) == "f.json:3: two lines"
    assert user_message(ValueError("a bug")) is None


# --- outputs follow the umask ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    from showcase.utils import atomic_write_text

    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "card.html", "<p>hi</p>")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(previous)
    assert (tmp_path / "card.html").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~umask


def test_generate_writes_a_card_the_group_can_read(shared, tmp_path, capsys):
    ws = Workspace(tmp_path, shared)
    ws.pipeline()
    previous = os.umask(0o022)
    try:
        argv = ["generate", "--pipeline", str(tmp_path / "pipeline"), "--user", "nobody-known",
                "--business", shared["business"], "-k", "2", "--output", str(tmp_path / "card.html")]
        assert main(argv) == 0
    finally:
        os.umask(previous)
    out = capsys.readouterr().out
    assert "(not in the dataset)" in out and "cold start" in out  # an unknown user is a cold start, not an error
    assert (tmp_path / "card.html").stat().st_mode & 0o777 == 0o644


# --- the labelling server: bad requests answered at once -------------------------------------------------------------
@pytest.fixture
def server(tmp_path):
    from annotation.server import AnnotationServer, open_session

    (tmp_path / "pairs.jsonl").write_text(PAIRS)
    session = open_session(tmp_path / "pairs.jsonl", tmp_path / "labels.jsonl", "alice")
    httpd = AnnotationServer(session, request_timeout=1.0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    session.log.close()


def _post(server, body: bytes, length: str | None = None) -> tuple[int, dict, float]:
    port = server.server_address[1]
    head = ["POST /api/label HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
            "Connection: close"]
    head.append(f"Content-Length: {len(body) if length is None else length}")
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        sock.shutdown(socket.SHUT_WR) if length is None else None  # a short body: the client stays silent
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:  # the server closed without reading the body it refused
            pass
    status = int(data.split(b" ", 2)[1])
    payload = json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")
    return status, payload, time.monotonic() - start


LABEL = json.dumps({"review_id": "r0", "sentence": "sentence 0", "photo_id": "p0", "label": "yes"}).encode()


@pytest.mark.parametrize("length, body, status, message", [
    ("abc", LABEL, 400, "Content-Length must be a whole number"),
    ("-1", LABEL, 400, "Content-Length must be a whole number"),
    ("1e3", LABEL, 400, "Content-Length must be a whole number"),
    (str(1 << 40), LABEL, 413, "body too large"),
    (str(len(LABEL) + 50), LABEL, 400, "shorter than its Content-Length"),
    (None, b"[" * 100_000 + b"]" * 100_000, 400, "nested deeper than 16"),
    (None, b'{"a": ' * 17 + b"1" + b"}" * 17, 400, "nested deeper than 16"),
    (None, b'{"label": "yes\xff"}', 400, "invalid JSON body"),
], ids=["non-numeric", "negative", "float", "huge", "short-body", "nested-100k", "nested-17", "non-utf8"])
def test_server_refuses_bad_bodies_at_once(server, length, body, status, message):
    got, payload, seconds = _post(server, body, length)
    assert (got, payload["error"].startswith(message) or message in payload["error"]) == (status, True), payload
    assert seconds < 5  # the short body waits for request_timeout (1 s) at most
    assert server.session.state()["done"] == 0
    got, payload, _ = _post(server, LABEL)  # the server is still there, and a good label goes through
    assert got == 200 and payload["done"] == 1
    deep_strings = json.dumps({"review_id": "r1", "sentence": "[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{", "photo_id": "p1",
                                "label": "no"}).encode()
    got, payload, _ = _post(server, deep_strings)  # brackets inside strings are text, not nesting
    assert got == 409 and payload["state"]["done"] == 1  # (a stale pair: refused for its content, not its shape)
