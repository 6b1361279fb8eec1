"""`showcase serve`: a local web viewer of a trained pipeline, and a JSON endpoint.

Routes (on 127.0.0.1 by default; requests whose `Host` header names another host are refused, against DNS
rebinding):

* `GET /` (+ `/viewer.js`, `/viewer.css`): pick a user and a business with search boxes, see the card live.
* `GET /api/showcase?user=U&business=B&k=3`: what `generate_showcase` returns, as JSON (`Showcase.to_dict()`,
  explanation included; photo files as `/photo/<id>` URLs).
* `GET /api/card?user=U&business=B&k=3`: the same showcase as an HTML fragment (what the viewer shows).
* `GET /api/users?q=PREFIX`, `GET /api/businesses?q=PREFIX`: up to `MAX_RESULTS` ids (and names) by prefix.
* `GET /photo/<photo_id>`: a photo file, only from the dataset's photo folder.

Why the standard library's `ThreadingHTTPServer` (as the labelling tool) rather than FastAPI + uvicorn: five GET
routes need no routing framework, no new dependency has to be installed next to torch, and the costly part (the
models) runs one request at a time behind a lock anyway, so an async server would buy nothing. Requests are
bounded: `k` is capped at `MAX_K`, search answers at `MAX_RESULTS`, and at most `MAX_WAITING` showcase requests
wait for the models at once (more get 503 with `Retry-After`).
"""
from __future__ import annotations

import bisect
import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

MAX_K = 10
MAX_RESULTS = 20
MAX_WAITING = 8
MAX_QUERY = 200
_STATIC = {"/": ("viewer.html", "text/html; charset=utf-8"),
           "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
           "/viewer.css": ("viewer.css", "text/css; charset=utf-8")}
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'"


class BadRequest(ValueError):
    """A request parameter is missing or out of range (answered with 400)."""


class Busy(RuntimeError):
    """Too many showcase requests are already waiting (answered with 503)."""


class _PrefixIndex:
    """Sorted keys for prefix search in O(log n + limit) per query (ids, and names lowercased)."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = sorted(pairs)
        self._keys = [k for k, _ in self._pairs]

    def search(self, prefix: str, limit: int) -> list[str]:
        start = bisect.bisect_left(self._keys, prefix)
        out: list[str] = []
        for key, value in self._pairs[start:]:
            if not key.startswith(prefix) or len(out) >= limit:
                break
            if value not in out:
                out.append(value)
        return out


class ShowcaseService:
    """What the viewer needs from a pipeline: search, and explained showcases one at a time. Thread-safe.

    Args:
        showcaser: the loaded pipeline.
        explainer: its `Explainer` (None: cards without reasons).
        max_waiting: showcase requests allowed to wait for the models at once.
    """

    def __init__(self, showcaser, explainer=None, max_waiting: int = MAX_WAITING):
        from showcase.api.explain import business_name

        self.showcaser, self.explainer = showcaser, explainer
        dataset = showcaser.dataset
        self._names = {b: business_name(dataset, b) for b in dataset.businesses}
        self._users = _PrefixIndex([(u.lower(), u) for u in dataset.users])
        self._businesses = _PrefixIndex([(b.lower(), b) for b in self._names]
                                        + [(n.lower(), b) for b, n in self._names.items() if n])
        self._models = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_waiting)

    @classmethod
    def load(cls, pipeline: str | Path, **kwargs) -> "ShowcaseService":
        from showcase.api.explain import Explainer
        from showcase.api.showcaser import Showcaser

        showcaser = Showcaser.load(pipeline)
        return cls(showcaser, Explainer.load(pipeline, showcaser), **kwargs)

    def users(self, query: str, limit: int = MAX_RESULTS) -> list[dict[str, Any]]:
        """Users whose id starts with `query` (case-insensitive), at most `limit`."""
        ids = self._users.search(query.strip().lower()[:MAX_QUERY], min(limit, MAX_RESULTS))
        return [{"id": u, "reviews": len(self.showcaser.dataset.user_reviews(u))} for u in ids]

    def businesses(self, query: str, limit: int = MAX_RESULTS) -> list[dict[str, Any]]:
        """Businesses whose id or name starts with `query` (case-insensitive), at most `limit`."""
        ids = self._businesses.search(query.strip().lower()[:MAX_QUERY], min(limit, MAX_RESULTS))
        return [{"id": b, "name": self._names.get(b)} for b in ids]

    def showcase(self, user: str, business: str, k: int = 3):
        """The explained showcase of a pair.

        Raises:
            BadRequest: empty ids, or k outside 1..MAX_K. KeyError: unknown business. Busy: too many waiting.
        """
        user, business = user.strip()[:MAX_QUERY], business.strip()[:MAX_QUERY]
        if not user or not business:
            raise BadRequest("give both user and business")
        if not 1 <= k <= MAX_K:
            raise BadRequest(f"k must be between 1 and {MAX_K}, got {k}")
        if not self._slots.acquire(blocking=False):
            raise Busy(f"more than {MAX_WAITING} showcase requests are waiting; retry in a moment")
        try:
            with self._models:  # the models answer one request at a time
                result = self.showcaser.generate_showcase(user, business, k=k)
                if self.explainer is not None:
                    self.explainer.explain(result)
            return result
        finally:
            self._slots.release()


def _photo_url(photo_id: str) -> str:
    return "/photo/" + quote(photo_id, safe="")


def showcase_json(result) -> dict[str, Any]:
    """`Showcase.to_dict()` with photo files replaced by their `/photo/` URLs (no server paths leak)."""
    data = result.to_dict()
    for photo in data["photos"]:
        photo["url"] = _photo_url(photo["photo_id"]) if photo.pop("path") else None
    return data


class _Handler(BaseHTTPRequestHandler):
    server: "ShowcaseServer"
    server_version = "showcase-serve"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, **headers: str) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8",
                   **headers)

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host in self.server.allowed_hosts:
            return True
        self._json(HTTPStatus.FORBIDDEN, {"error": "unexpected Host header"})
        return False

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if not self._host_ok():
            return
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        service = self.server.service
        try:
            if path in _STATIC:
                name, ctype = _STATIC[path]
                self._send(HTTPStatus.OK, resources.files("showcase.api").joinpath(name).read_bytes(), ctype)
            elif path == "/api/users":
                self._json(HTTPStatus.OK, service.users(query.get("q", "")))
            elif path == "/api/businesses":
                self._json(HTTPStatus.OK, service.businesses(query.get("q", "")))
            elif path in ("/api/showcase", "/api/card"):
                self._showcase(path, query)
            elif path.startswith("/photo/"):
                self._photo(unquote(path[len("/photo/"):]))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        except BrokenPipeError:
            pass  # the client went away

    do_HEAD = do_GET

    def _showcase(self, path: str, query: dict[str, str]) -> None:
        from showcase.api.card import card_fragment

        try:
            k = int(query.get("k", "3"))
        except ValueError:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"k must be an integer, got {query.get('k')!r}"})
            return
        try:
            result = self.server.service.showcase(query.get("user", ""), query.get("business", ""), k)
        except BadRequest as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        except KeyError as e:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(e.args[0]) if e.args else "not found"})
            return
        except Busy as e:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(e)}, Retry_After="1")
            return
        if path == "/api/showcase":
            self._json(HTTPStatus.OK, showcase_json(result))
        else:
            fragment = card_fragment(result, 200, photo_src=lambda pid, _path, _size: _photo_url(pid))
            self._send(HTTPStatus.OK, fragment.encode("utf-8"), "text/html; charset=utf-8")

    def _photo(self, photo_id: str) -> None:
        dataset = self.server.service.showcaser.dataset
        try:
            file = dataset.photo_path(photo_id)
        except ValueError:  # no photo folder, or an id that would leave it
            file = None
        if file is None or not file.is_file():
            self._json(HTTPStatus.NOT_FOUND, {"error": "photo not found"})
            return
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, file.read_bytes(), ctype, cache=True)


class ShowcaseServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` serving one `ShowcaseService`.

    Args:
        service: what to serve.
        host: interface to listen on (loopback by default; anything else exposes the viewer to the network).
        port: TCP port; 0 picks a free one (see `url`).
        verbose: log every request to stderr.
    """

    daemon_threads = True

    def __init__(self, service: ShowcaseService, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self.service, self.verbose = service, verbose
        self.allowed_hosts = {"127.0.0.1", "localhost", "::1", host.lower()}
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.server_address[1]}/"


def add_arguments(parser) -> None:
    """Options of `showcase serve`."""
    parser.description = ("Serve a trained pipeline in the browser: pick a user and a business, see their showcase "
                          "card; GET /api/showcase?user=U&business=B&k=3 returns it as JSON.")
    parser.add_argument("--pipeline", required=True, help="pipeline folder (runs/demo/pipeline after `showcase demo`)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1, this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=8008, help="TCP port (default 8008; 0 picks a free one)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")


def run(args) -> int:
    """Run `showcase serve` until Ctrl-C."""
    service = ShowcaseService.load(args.pipeline)
    server = ShowcaseServer(service, args.host, args.port, args.verbose)
    print(f"serving {args.pipeline}: open {server.url}  (JSON: {server.url}api/showcase?user=U&business=B&k=3; "
          "Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
