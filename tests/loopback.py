"""A loopback HTTP server that serves one file with Range support and can misbehave: cut the
first response at half its Content-Length, stall after 1000 bytes, or trickle bytes."""

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.ranges.append(rng)
        start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1]) if rng else 0
        body = srv.data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(srv.data) - 1}/{len(srv.data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        first = len(srv.ranges) == 1
        if srv.mode == "cut" and first:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif srv.mode == "stall":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(srv.pause)
        elif srv.mode == "trickle":
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(srv.pause)
        else:
            self.wfile.write(body)
        srv.sent += len(body) if srv.mode == "ok" or not first else 0


def serve(data: bytes, mode: str = "ok", pause: float = 0.0):
    """Start the server in a thread; returns it (`.url`, `.ranges`: the Range headers seen,
    `.sent`: bytes of complete responses). Call `.shutdown()` when done."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.data, httpd.mode, httpd.pause, httpd.ranges, httpd.sent = data, mode, pause, [], 0
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/v.mp4"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
