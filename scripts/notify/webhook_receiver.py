"""A webhook receiver that verifies every request with the Standard Webhooks reference library.

Used by `make test-notify` (the e2e tests start it) and by `make run` (the demo's webhook
channel). Each request is verified with `standardwebhooks.Webhook(secret).verify`, where the
secret is read from --secret-file on every request (the tests learn it only after creating the
channel). Every request becomes one JSON line on stdout and in --log:
{"webhook_id", "verified", "error", "type", "body", "signatures", "answered"}.
Verified requests are answered 204, except that the first --fail-first of them get 500;
unverifiable ones get 400. With --slack nothing is verified: any JSON is logged and answered 200
(a stand-in for Slack's incoming webhooks in `make run`). The first line printed is
{"listening": <port>}.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret-file")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument(
        "--slack", action="store_true", help="accept unsigned JSON (a stand-in for Slack's incoming webhooks)"
    )
    args = parser.parse_args()
    lock = threading.Lock()
    state = {"verified": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = {
                "webhook_id": headers.get("webhook-id"),
                "signatures": len(headers.get("webhook-signature", "").split()),
                "body": body,
            }
            if args.slack:
                text = json.loads(body).get("text") if body.startswith("{") else None
                record.update(verified=None, error=None, type="slack", text=text)
                status = 200
            else:
                status = self.verify(body, headers, record)
            record["answered"] = status
            line = json.dumps(record)
            with lock:
                print(line, flush=True)
                if args.log:
                    with open(args.log, "a") as f:
                        f.write(line + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def verify(self, body: str, headers: dict, record: dict) -> int:
            try:
                with open(args.secret_file) as f:
                    secret = f.read().strip()
                payload = Webhook(secret).verify(body, headers)
            except Exception as e:  # every failure to verify is reported, never hidden
                record.update(verified=False, error=f"{type(e).__name__}: {e}", type=None)
                return 400
            record.update(verified=True, error=None, type=payload.get("type"))
            with lock:
                state["verified"] += 1
                return 500 if state["verified"] <= args.fail_first else 204

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
