#!/usr/bin/env python3
"""A small HTTP receiver for netnet's webhook sink (annotate --sink http://HOST:PORT/PATH).

Listens on 127.0.0.1, accepts POSTs of JSON lines (one netnet record a line, as the sink sends
them), appends each accepted body to --out and answers 204 No Content. To try the sink's
retries, --fail-first N answers the first N POSTs with --status (503 by default) and records
nothing of them: with a retried status (408, 429, 5xx, 401, 403) netnet sends the same records
again; with another 4xx (400, 413, 422, ...) it passes them over as refused. --auth checks
the sink's HTTP basic auth (USER@ in the --sink URL, the password in ?password_file=PATH);
--cert and --key serve HTTPS (give netnet the CA as https://…?ca_file=PATH).

The first line on standard output is "listening PORT" (flushed), so --port 0 (any free port)
can be used from scripts and tests. Python 3 standard library only.

Example:
    scripts/webhook-receiver.py --port 8080 --out received.jsonl &
    netnet annotate clip.mp4 --sink http://127.0.0.1:8080/hook --spool /tmp/spool
"""

import argparse
import base64
import http.server
import ssl
import sys
import threading


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free one; default 0)")
    parser.add_argument("--out", help="append every accepted body to this file (default: discard)")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer the first N POSTs with --status, recording nothing of them (default 0)")
    parser.add_argument("--status", type=int, default=503, metavar="CODE",
                        help="the status of those failures (default 503 Service Unavailable)")
    parser.add_argument("--auth", metavar="USER:PASSWORD",
                        help="require this HTTP basic auth; other POSTs get 401 and are not recorded")
    parser.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate (chain); needs --key")
    parser.add_argument("--key", metavar="PEM", help="the private key of --cert")
    parser.add_argument("--quiet", action="store_true", help="no line per request on standard error")
    args = parser.parse_args()
    if not 100 <= args.status <= 599:
        parser.error(f"--status must be an HTTP status (100-599), got {args.status}")
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")

    expected_auth = "Basic " + base64.b64encode(args.auth.encode()).decode() if args.auth else None
    lock = threading.Lock()
    state = {"posts": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.1 keeps the sink's connection open between batches, as a real endpoint would.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            if expected_auth is not None and self.headers.get("Authorization") != expected_auth:
                self.answer(401, b"wrong or no credentials\n", [("WWW-Authenticate", 'Basic realm="netnet"')])
                return
            with lock:
                state["posts"] += 1
                number = state["posts"]
                failing = number <= args.fail_first
                if not failing and args.out:
                    # Appended under the lock, so the file's order is the order the answers went out.
                    with open(args.out, "ab") as out:
                        out.write(body)
                        if body and not body.endswith(b"\n"):
                            out.write(b"\n")
            if failing:
                self.answer(args.status, b"failing on purpose (--fail-first)\n")
            else:
                self.answer(204, b"")

        def answer(self, status: int, message: bytes, headers=()) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if message:
                self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)

        def log_message(self, format: str, *values) -> None:
            if not args.quiet:
                sys.stderr.write("webhook-receiver: %s\n" % (format % values))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
