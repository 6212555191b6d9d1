"""A local HTTP receiver for tests: records every request (an incoming webhook's notices, health polls) and answers
with the status the test sets per path (200 by default; a list of statuses is consumed one request at a time).

    with Receiver() as receiver:
        receiver.url('/notify')            # http://127.0.0.1:<port>/notify
        receiver.statuses['/health'] = [503, 503, 200]
        ...
        receiver.bodies('/notify')          # the JSON bodies posted there, in order
        receiver.count('/health')
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(object):
    """The server runs in a thread of the test process while ansible-playbook runs as a child process."""

    def __init__(self):
        self.requests = []
        self.statuses = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                try:
                    body = json.loads(raw.decode('utf-8')) if raw else None
                except ValueError:
                    body = raw.decode('utf-8', 'replace')
                with receiver.lock:
                    receiver.requests.append(dict(method=self.command, path=self.path, body=body,
                                                  headers=dict(self.headers)))
                    status = receiver.statuses.get(self.path, 200)
                    if isinstance(status, list):
                        status = status.pop(0) if len(status) > 1 else status[0]
                payload = json.dumps(dict(ok=200 <= status < 300)).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args):  # quiet
                return

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.server.server_address[1], path)

    def of(self, path):
        with self.lock:
            return [r for r in self.requests if r['path'] == path]

    def bodies(self, path):
        return [r['body'] for r in self.of(path)]

    def count(self, path):
        return len(self.of(path))
