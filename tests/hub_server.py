"""Test helpers for the weights hub: a real HTTP server on 127.0.0.1 with misbehaving routes, and a zoo copy.

Imported by tests/test_hub.py and tests/test_hub_load.py (not a pytest plugin: nothing here is collected).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

from lmkzoo import registry


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class Route:
    """How the server answers GET on one path."""

    data: bytes = b""
    status: int = 200
    range_ok: bool = True  # honour "Range: bytes=N-" with 206
    drop_first: int = 0  # the first N answers send half the body, then close the connection
    fail_first: int = 0  # the first N answers are 503 (Retry-After: 0)
    stall_after: int | None = None  # send this many body bytes, then go silent until the test ends
    trickle: float = 0.0  # seconds between 512-byte pieces
    gate: threading.Event | None = None  # send half the body, wait for the event, send the rest
    requests: list = dataclasses.field(default_factory=list)  # the Range header of each GET (None: none)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: a drop is a closed socket

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        route = srv.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        route.requests.append(rng)
        n = len(route.requests)
        if route.status != 200:
            self.send_error(route.status)
            return
        if n <= route.fail_first:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, start = route.data, 0
        if rng and route.range_ok:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
            self.send_header("Accept-Ranges", "bytes" if route.range_ok else "none")
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        try:
            if n <= route.drop_first:
                self.wfile.write(body[: len(body) // 2])
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if route.stall_after is not None:
                self.wfile.write(body[: route.stall_after])
                srv.stop.wait(30)
                return
            if route.gate is not None:
                self.wfile.write(body[: len(body) // 2])
                route.gate.wait(30)
                self.wfile.write(body[len(body) // 2:])
                return
            if route.trickle:
                for i in range(0, len(body), 512):
                    if srv.stop.is_set():
                        return
                    self.wfile.write(body[i: i + 512])
                    time.sleep(route.trickle)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)


class Server:
    """``with Server() as s: url = s.add("/f.bin", Route(data=...))``."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.stop = threading.Event()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, path: str, route: Route) -> str:
        self.httpd.routes[path] = route
        return self.base + path

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


TINY_ARCH = {
    "family": "pipnet",
    "description": "test-only tiny PIPNet (ResNet-18 x 0.125, 64 px)",
    "builder": {"backbone": "resnet18", "backbone_args": {"width_multiplier": 0.125}, "net_stride": 32,
                "num_neighbors": 4, "extra_channels": 16},
    "input": {"size": [64, 64], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
              "crop": {"policy": "box", "scale": 1.0}},
    "recipe": {"epochs": 1, "batch_size": 2},
    "tags": {"aflw": {"scheme": "aflw19"}},
}


def card(url: str, data: bytes, **extra) -> dict:
    """A complete zoo weights entry for ``data`` served at ``url``."""
    return {"url": url, "sha256": sha(data), "size": len(data), "format": ".weights.h5", "license": "Apache-2.0",
            "training_data": "synthetic test data", "data_license": "CC0-1.0", "made_by": "a test", "metrics": {"nme": 0.1},
            **extra}


def write_zoo(monkeypatch, tmp_path, archs: dict) -> dict:
    """A copy of zoo.yaml plus ``archs``, validated and installed as the registry for this test."""
    with open(registry.zoo_path()) as f:
        raw = yaml.safe_load(f)
    raw = copy.deepcopy(raw)
    raw["models"].update(copy.deepcopy(archs))
    specs = registry.validate_zoo(raw)
    path = tmp_path / f"zoo-{len(list(tmp_path.glob('zoo-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setattr(registry, "zoo_path", lambda: path)
    return specs
