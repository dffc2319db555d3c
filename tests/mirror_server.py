"""A loopback HTTP server that answers like OSDR and recount3, serving ../shared/data.

Routes
------
``/osdr/data/osd/files/{n}``
    JSON listing built from ``osdr/OSD-{n}/`` (compressed count files listed under their
    uncompressed name; ``s_OSD-{n}.txt.xz`` listed as the ISA zip the real service offers).
``/geode-py/ws/studies/OSD-{n}/download?source=datamanager&file=NAME``
    302 redirect to ``/files/OSD-{n}/NAME``, which serves the bytes (decompressed on the fly; the
    ISA zip built in memory).
``/recount3/...``
    Files of ``recount3_mirror/recount3/`` as they are.

Faults (set on ``server.faults`` per test): ``corrupt`` (file names served with a flipped byte),
``truncate`` (Content-Length larger than the body), ``truncate_once`` (the same, first request
only), ``hang`` (paths that never answer until the
server stops), ``json_body`` (replace every listing answer), ``missing`` (paths answered 404).
"""

from __future__ import annotations

import io
import json
import lzma
import re
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class Faults:
    """Per-test fault injection switches."""

    corrupt: set[str] = field(default_factory=set)
    truncate: set[str] = field(default_factory=set)
    truncate_once: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    json_body: bytes | None = None


class MirrorServer:
    """Threaded loopback server over a shared-data folder; ``base_url`` is its root."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self.faults = Faults()
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MirrorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def study_folder(self, number: int) -> Path:
        return self.data_root / "osdr" / f"OSD-{number}"

    def listing(self, number: int) -> list[tuple[str, Path]]:
        """(served name, source file) pairs for a study."""
        pairs = []
        for path in sorted(self.study_folder(number).glob("*")):
            name = path.name.removesuffix(".xz")
            if re.fullmatch(r"s_OSD-\d+\.txt", name):
                name = f"OSD-{number}_metadata_OSD-{number}-ISA.zip"
            pairs.append((name, path))
        return pairs

    def file_bytes(self, number: int, name: str) -> bytes | None:
        source = dict(self.listing(number)).get(name)
        if source is None:
            return None
        data = source.read_bytes()
        data = lzma.decompress(data) if source.suffix == ".xz" else data
        if name.endswith("-ISA.zip"):
            data = _isa_zip(source.name.removesuffix(".xz"), data)
        return data


def _isa_zip(member: str, table: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, table)
        archive.writestr(member.replace("s_", "i_", 1), b"Investigation placeholder\n")
    return buffer.getvalue()


def _make_handler(server: MirrorServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            server.requests.append(self.path)
            if any(h in self.path for h in server.faults.hang):
                server.stopping.wait(60)
                return
            if any(m in self.path for m in server.faults.missing):
                return self._send(404, b"not found")
            for pattern, route in ROUTES:
                match = re.fullmatch(pattern, parts.path)
                if match:
                    return route(self, match, urllib.parse.parse_qs(parts.query))
            self._send(404, b"not found")

        def _send(
            self,
            code: int,
            body: bytes,
            *,
            length: int | None = None,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def files_json(self, match, query) -> None:
            number = int(match.group(1))
            if server.faults.json_body is not None:
                return self._send(200, server.faults.json_body)
            if not server.study_folder(number).is_dir():
                return self._send(200, b'{"studies": {}, "success": true}')
            entries = [
                {
                    "file_name": name,
                    "file_size": 0,
                    "category": "Study Files",
                    "remote_url": f"/geode-py/ws/studies/OSD-{number}/download?"
                    + urllib.parse.urlencode({"source": "datamanager", "file": name}),
                }
                for name, _ in server.listing(number)
            ]
            answer = {
                "studies": {f"OSD-{number}": {"file_count": len(entries), "study_files": entries}},
                "success": True,
            }
            self._send(200, json.dumps(answer).encode())

        def download(self, match, query) -> None:
            name = query.get("file", [""])[0]
            location = f"/files/OSD-{match.group(1)}/{urllib.parse.quote(name)}"
            self._send(302, b"", headers={"Location": location})

        def study_file(self, match, query) -> None:
            name = urllib.parse.unquote(match.group(2))
            data = server.file_bytes(int(match.group(1)), name)
            if data is None:
                return self._send(404, b"not found")
            self._send_file(name, data)

        def recount3(self, match, query) -> None:
            root = (server.data_root / "recount3_mirror" / "recount3").resolve()
            path = (root / match.group(1)).resolve()
            if root not in path.parents or not path.is_file():
                return self._send(404, b"not found")
            self._send_file(path.name, path.read_bytes())

        def _send_file(self, name: str, data: bytes) -> None:
            if name in server.faults.corrupt:
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            if name in server.faults.truncate_once:
                server.faults.truncate_once.discard(name)
                return self._send(200, data[: len(data) // 2], length=len(data))
            if name in server.faults.truncate:
                return self._send(200, data[: len(data) // 2], length=len(data))
            self._send(200, data)

    ROUTES = (
        (r"/osdr/data/osd/files/(\d+)", Handler.files_json),
        (r"/geode-py/ws/studies/OSD-(\d+)/download", Handler.download),
        (r"/files/OSD-(\d+)/(.+)", Handler.study_file),
        (r"/recount3/(.+)", Handler.recount3),
    )
    return Handler


@pytest.fixture()
def mirror_server(shared_data):
    """A running :class:`MirrorServer` over the shared data; stopped after the test."""
    server = MirrorServer(shared_data).start()
    try:
        yield server
    finally:
        server.stop()
