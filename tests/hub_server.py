"""A loopback stand-in for the Hugging Face Hub: real sockets on 127.0.0.1, no internet.

It serves the folder `root/<repo>/` as the repo `<repo>` at revision `main`, the way the Hub does:

- `GET|HEAD /<repo>/resolve/<revision>/<file>`: the bytes, with the headers `huggingface_hub`
  reads (`X-Repo-Commit`, `ETag`, and for LFS files `X-Linked-Etag` / `X-Linked-Size`);
- `GET /api/models/<repo>/tree/<revision>`: the JSON listing (path, size, git blob id, and the
  sha256 of LFS files), computed from the files as they were when `publish` was called, so a
  file changed afterwards no longer matches its listing (a corrupt download).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin")  # stored in LFS on the Hub, as there


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    server: HubServer

    def do_HEAD(self) -> None:  # noqa: N802 - the name http.server calls
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0].lstrip("/")
        self.server.requests.append((self.command, path))
        if path.startswith("api/models/"):
            repo, _, revision = path.removeprefix("api/models/").rpartition("/tree/")
            listing = self.server.listings.get(repo)
            if listing is None or revision != "main":
                self.send_error(404, "Repository not found")
                return
            return self._send(json.dumps(listing).encode(), {}, body)
        repo, sep, rest = path.partition("/resolve/")
        revision, _, name = rest.partition("/")
        entry = {e["path"]: e for e in self.server.listings.get(repo, [])}.get(name)
        if not sep or revision not in ("main", COMMIT) or entry is None:
            self.send_error(404, "Entry not found")
            return
        data = (self.server.root / repo / name).read_bytes()
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{entry["oid"]}"'}
        if entry.get("lfs"):
            headers.update(
                {"X-Linked-Etag": f'"{entry["lfs"]["oid"]}"', "X-Linked-Size": str(len(data))}
            )
        self._send(data, headers, body)

    def _send(self, data: bytes, headers: dict, body: bool) -> None:
        self.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # keep the test output clean
        pass


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.listings: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def publish(self, repo: str) -> None:
        """List the files now in `root/<repo>/` as that repo's revision `main`."""
        listing = []
        for path in sorted((self.root / repo).iterdir()):
            data = path.read_bytes()
            entry = {
                "type": "file",
                "path": path.name,
                "size": len(data),
                "oid": git_blob_sha1(data),
            }
            if path.name.endswith(LFS_SUFFIXES):
                sha256 = hashlib.sha256(data).hexdigest()
                entry["lfs"] = {"oid": sha256, "size": len(data), "pointerSize": 134}
            listing.append(entry)
        self.listings[repo] = listing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)
