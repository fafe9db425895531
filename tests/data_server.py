"""A loopback HTTP server for the download tests: real sockets on 127.0.0.1, no internet.

It serves files from a folder, honours `Range: bytes=N-` (206) unless told not to, logs every
request, and can misbehave on purpose per file:

- `truncate`: announce the full Content-Length, send half the body, close the connection;
- `truncate-once`: the same on the first request for that file only;
- `hang`: accept the request and answer nothing until the test ends (for timeouts);
- `no-length`: send the whole body without a Content-Length, ending it by closing the connection.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        name = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        self.server.requests.append((name, range_header))
        behaviour = self.server.behaviour.get(name, "normal")
        if behaviour == "hang":
            self.server.release.wait(10)
            return
        path = self.server.root / name
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        if range_header and self.server.ranges:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if behaviour == "no-length":
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        first_time = sum(1 for n, _ in self.server.requests if n == name) == 1
        if behaviour == "truncate" or (behaviour == "truncate-once" and first_time):
            self.wfile.write(body[: max(1, len(body) // 2)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # keep the test output clean
        pass


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.ranges = True
        self.behaviour: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)
