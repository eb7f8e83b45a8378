"""A tiny threaded HTTP server on 127.0.0.1 (port 0) for download tests. Test-only.

    with FileServer() as srv:
        srv.add("/f.bin", data)                            # honours Range: bytes=N- / N-M
        srv.add("/cut.bin", data, truncate_at=1000)        # 1st request: close after 1000 body bytes
        srv.add("/norange.bin", data, ignore_range=True)   # always 200 with the whole file
        srv.add("/boom", b"", status=500)                  # error status
        srv.add("/endless", b"x" * 65536, endless=True)    # no length, the data repeated forever
        srv.add("/slow", data, trickle_s=0.5)              # one byte every 0.5 s
        srv.add("/stall", data, trickle_s=3600)            # headers, then (almost) nothing
        download(srv.url("/f.bin"), ...)
        srv.requests                                       # [(path, {header: value}), ...]
"""
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    data: bytes
    status: int = 200
    ignore_range: bool = False
    truncate_at: int | None = None  # body bytes sent before closing, on the first `truncate_times`
    truncate_times: int = 1
    endless: bool = False  # hostile: 200 without Content-Length, data repeated until disconnect
    trickle_s: float = 0.0  # hostile: seconds between single body bytes
    hits: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: closing it ends the body

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server.owner
        with srv.lock:
            srv.requests.append((self.path, dict(self.headers.items())))
            route = srv.routes.get(self.path)
            if route is not None:
                route.hits += 1
                hit = route.hits
        if route is None:
            return self._send_error(404, "Not Found")
        if route.status != 200:
            return self._send_error(route.status, "Simulated error")
        if route.endless or route.trickle_s:
            return self._hostile(route)
        data, start = route.data, 0
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "") or "")
        if m and not route.ignore_range:
            start = int(m.group(1))
            end = int(m.group(2)) + 1 if m.group(2) else len(data)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:min(end, len(data))]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "none" if route.ignore_range else "bytes")
        self.end_headers()
        if route.truncate_at is not None and hit <= route.truncate_times:
            body = body[:route.truncate_at]
        self.wfile.write(body)
        self.wfile.flush()

    def _hostile(self, route):
        self.send_response(200)
        if not route.endless:
            self.send_header("Content-Length", str(len(route.data)))
        self.end_headers()
        try:
            for i in range(1 << 40):
                if route.endless:
                    self.wfile.write(route.data)
                else:
                    self.wfile.write(route.data[i % len(route.data):][:1])
                    self.wfile.flush()
                    time.sleep(route.trickle_s)
                if self.server.owner.closing.is_set():
                    return
        except OSError:  # the client gave up: what the test wants
            return

    def _send_error(self, code, reason):
        body = f"<html>{code} {reason}</html>".encode()
        self.send_response(code, reason)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FileServer:
    """Serves registered byte strings on http://127.0.0.1:<free port>/; records every request."""

    def __init__(self):
        self.routes, self.requests, self.lock = {}, [], threading.Lock()
        self.closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def add(self, path, data, **kw):
        self.routes[path] = Route(data, **kw)
        return self.url(path)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_to(self, path):
        return [h for p, h in self.requests if p == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
