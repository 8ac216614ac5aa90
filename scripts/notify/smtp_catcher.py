"""A local SMTP server (aiosmtpd) that keeps every message it receives.

Used by `make test-notify` (the email test reads what it received) and by `make run` (the demo's
email channel; read the mail in .run/mail/). Each message is written to --dir as
<n>.eml and announced as one JSON line on stdout: {"file", "from", "to", "subject",
"header_from", "header_to", "message_id", "content_type", "text", "html"} (parsed with Python's
email package). The first line printed
is {"listening": <port>}.
"""

import argparse
import asyncio
import json
import os
import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:05d}.eml")
        with open(path, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        part = lambda kind: (lambda p: p.get_content() if p is not None else None)(  # noqa: E731
            parsed.get_body(preferencelist=(kind,))
        )
        line = {
            "file": path,
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": parsed["subject"],
            "header_from": parsed["from"],
            "header_to": parsed["to"],
            "message_id": parsed["message-id"],
            "content_type": parsed.get_content_type(),
            "text": part("plain"),
            "html": part("html"),
        }
        print(json.dumps(line), flush=True)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    port = args.port or free_port()
    controller = Controller(Keep(args.dir), hostname="127.0.0.1", port=port)
    controller.start()
    print(json.dumps({"listening": port}), flush=True)
    try:
        asyncio.new_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
