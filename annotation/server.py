"""The labelling web server: one page on loopback, a small JSON API, photos served from one folder.

Routes (all on 127.0.0.1; requests with another `Host` header are refused, against DNS rebinding):

* `GET /`, `/page.js`, `/page.css` — the page (package data of `annotation`).
* `GET /api/state` — progress and the pair to label now (the first unlabelled pair in pairs-file order).
* `POST /api/label` `{"review_id", "sentence", "photo_id", "label": "yes"|"no"|"skip"}` — labels the current
  pair; a label for any other pair (a stale tab, a double key press) is refused with 409 and the fresh state.
* `POST /api/undo` — withdraws the last label; that pair becomes the current one again.
* `GET /photo/<photo_id>` — the photo file, only from the photos folder (ids that would escape it get 404).

POST bodies must be `application/json`, so a cross-site form cannot post labels, with a numeric `Content-Length`
(at most 1 MiB) and JSON nested at most 16 deep; anything else is answered 4xx at once, and a client that goes
silent (headers or body) is dropped after `request_timeout` seconds, so no thread waits on it for long.
"""
from __future__ import annotations

import json
import mimetypes
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from annotation.labels import NO, SKIP, YES, LabelLog, PairKey, normalise_label, read_pairs
from showcase.data.photos import PhotoStore

_STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript; charset=utf-8"),
           "/page.css": ("page.css", "text/css; charset=utf-8")}
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'"
_MAX_BODY = 1 << 20
_MAX_DEPTH = 16  # a label is a flat object; deeper JSON is refused before parsing (no deep recursion)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _nesting_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON `text` (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


class Conflict(Exception):
    """A label was sent for a pair that is not the current one."""


class AnnotationSession:
    """What the annotator sees and does: the pairs to label and their label log. Thread-safe.

    Args:
        pairs: the pairs in the order they are shown.
        log: the annotator's open label log.
        photos: the photo folder, or None when photos are not available.
    """

    def __init__(self, pairs: list[PairKey], log: LabelLog, photos: PhotoStore | None = None):
        if not pairs:
            raise ValueError("no pairs to label")
        self.pairs, self.log, self.photos = pairs, log, photos
        self._lock = threading.Lock()

    def _current(self) -> int | None:
        return next((i for i, k in enumerate(self.pairs) if k not in self.log.labels), None)

    def _state(self) -> dict[str, Any]:
        labels = self.log.labels
        done = [labels[k] for k in self.pairs if k in labels]
        i = self._current()
        pair = None
        if i is not None:
            key = self.pairs[i]
            has_photo = self.photos is not None and self.photos.exists(key.photo_id)
            pair = {**key._asdict(), "index": i,
                    "photo_url": "/photo/" + quote(key.photo_id, safe="") if has_photo else None}
        return {"annotator": self.log.annotator, "total": len(self.pairs), "done": len(done),
                "yes": done.count(YES), "no": done.count(NO), "skip": done.count(SKIP),
                "can_undo": self.log.last is not None, "pair": pair}

    def state(self) -> dict[str, Any]:
        """Progress (`done` of `total`, yes/no/skip counts), `can_undo`, and the current `pair` (None when done)."""
        with self._lock:
            return self._state()

    def label(self, key: PairKey, label: Any) -> dict[str, Any]:
        """Label the current pair and return the new state.

        Raises:
            Conflict: `key` is not the current pair.
            ValueError: not a yes/no/skip label.
        """
        value = normalise_label(label)
        if value is None:
            raise ValueError("label must be yes, no or skip")
        with self._lock:
            i = self._current()
            if i is None or self.pairs[i] != key:
                raise Conflict("this pair is not the one to label now (another tab, or a repeated key press?)")
            self.log.label(key, value)
            return self._state()

    def undo(self) -> dict[str, Any]:
        """Withdraw the last label (if any) and return the new state."""
        with self._lock:
            self.log.undo()
            return self._state()


class _Handler(BaseHTTPRequestHandler):
    server: "AnnotationServer"
    server_version = "showcase-annotate"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # a slow or stalled client never holds a thread for longer
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if self.server.verbose:
            super().log_message(format, *args)

    # --- responses --------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=60" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _error(self, status: int, message: str, **extra: Any) -> None:
        self._json(status, {"error": message, **extra})

    def _host_ok(self) -> bool:
        port = self.server.server_address[1]
        if self.headers.get("Host") in {f"127.0.0.1:{port}", f"localhost:{port}"}:
            return True
        self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        return False

    def _read_json_body(self) -> dict[str, Any] | None:
        """The POST body as a JSON object, or None after answering 4xx: a bad or missing `Content-Length`, a body
        that does not arrive within the server's `request_timeout`, bad JSON, or JSON nested too deep."""
        if self.headers.get("Transfer-Encoding"):
            return self._refuse(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not (declared.isascii() and declared.isdigit()):
            return self._refuse(HTTPStatus.BAD_REQUEST, "Content-Length must be a whole number of bytes >= 0")
        length = int(declared)
        if length > _MAX_BODY:
            return self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body too large (at most {_MAX_BODY} bytes)")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            raw = b""
        if len(raw) < length:  # the client sent less than it declared and went silent
            return self._refuse(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
        try:
            text = raw.decode("utf-8") or "{}"
            if _nesting_depth(text) > _MAX_DEPTH:
                raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
            body = json.loads(text)
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except (ValueError, RecursionError) as e:
            return self._refuse(HTTPStatus.BAD_REQUEST, f"invalid JSON body: {e}")
        return body

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True  # an unread body must not be taken for the next request
        self._error(status, message)

    # --- routes -----------------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        session = self.server.session
        if path in _STATIC:
            name, ctype = _STATIC[path]
            self._send(HTTPStatus.OK, resources.files("annotation").joinpath(name).read_bytes(), ctype)
        elif path == "/api/state":
            self._json(HTTPStatus.OK, session.state())
        elif path.startswith("/photo/"):
            self._photo(unquote(path[len("/photo/"):]))
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    do_HEAD = do_GET

    def _photo(self, photo_id: str) -> None:
        photos = self.server.session.photos
        try:
            file = photos.path(photo_id) if photos is not None else None
        except ValueError:  # an id that would leave the photo folder
            file = None
        if file is None or not file.is_file():
            self._error(HTTPStatus.NOT_FOUND, "photo not found")
            return
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, file.read_bytes(), ctype, cache=True)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path not in ("/api/label", "/api/undo"):
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "POST bodies must be application/json")
            return
        body = self._read_json_body()
        if body is None:
            return
        session = self.server.session
        if path == "/api/undo":
            self._json(HTTPStatus.OK, session.undo())
            return
        try:
            key = PairKey(*(str(body[f]) for f in PairKey._fields))
            self._json(HTTPStatus.OK, session.label(key, body.get("label")))
        except KeyError as e:
            self._error(HTTPStatus.BAD_REQUEST, f"missing field {e}")
        except Conflict as e:
            self._error(HTTPStatus.CONFLICT, str(e), state=session.state())
        except ValueError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))


class AnnotationServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` on 127.0.0.1 serving one `AnnotationSession`.

    Args:
        session: what to serve.
        port: TCP port; 0 picks a free one (see `url`).
        verbose: log every request to stderr.
        request_timeout: seconds a connection may stay silent (headers or body) before it is dropped.
    """

    daemon_threads = True

    def __init__(self, session: AnnotationSession, port: int = 0, verbose: bool = False,
                 request_timeout: float = 10.0):
        self.session, self.verbose, self.request_timeout = session, verbose, request_timeout
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


def open_session(pairs: str | Path, labels: str | Path, annotator: str,
                 photos: str | Path | None = None) -> AnnotationSession:
    """Read the pairs, lock and replay the annotator's label file, and return the session (close `session.log`)."""
    pair_list = read_pairs(pairs)
    if photos is not None and not Path(photos).is_dir():
        raise FileNotFoundError(f"photos folder {photos} not found")
    log = LabelLog.open(labels, annotator)
    try:
        return AnnotationSession(pair_list, log, PhotoStore(photos) if photos is not None else None)
    except BaseException:
        log.close()
        raise
