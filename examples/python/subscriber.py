"""A subscriber of Lifeline's events (docs/events.md): a durable pull consumer on the events
stream that decodes every event kind and prints one JSON line per event.

Each message is acknowledged only after its effect (here: the printed line) is done; a message
that cannot be decoded is logged to stderr and terminated, so it is never redelivered.

Run `scripts/examples/setup.sh` first: it generates the protobuf code into `gen/`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The generated code (`python -m grpc_tools.protoc`, see scripts/examples/setup.sh) lives in
# gen/ beside this file and is not committed.
sys.path.insert(0, str(Path(__file__).resolve().parent / "gen"))

import nats  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from google.protobuf.message import DecodeError, Message  # noqa: E402
from nats.aio.msg import Msg  # noqa: E402
from nats.errors import TimeoutError as NatsTimeoutError  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: E402

try:
    from lifeline.events.v1 import events_pb2 as pb  # noqa: E402
except ImportError as e:  # pragma: no cover - a setup problem, reported plainly
    sys.exit(f"generated code missing ({e}): run scripts/examples/setup.sh")

# The subject's `<event>` segment names the payload's message type: the public contract.
MESSAGE_TYPES: dict[str, type[Message]] = {
    "account_connected": pb.AccountConnected,
    "account_reconnected": pb.AccountReconnected,
    "account_disconnected": pb.AccountDisconnected,
    "auth_failed": pb.AuthFailed,
    "token_refreshed": pb.TokenRefreshed,
    "token_expiring": pb.TokenExpiring,
    "post_retry_requested": pb.PostRetryRequested,
    "post_published": pb.PostPublished,
    "post_failed": pb.PostFailed,
    "post_dead_lettered": pb.PostDeadLettered,
    "post_cancelled": pb.PostCancelled,
    "account_flapping": pb.AccountFlapping,
}


@dataclass(frozen=True)
class Settings:
    nats_url: str
    stream: str
    subject_root: str
    durable: str
    count: int | None
    idle: float


class Undecodable(Exception):
    """A message this subscriber cannot turn into an event."""


def parse_args(argv: list[str]) -> Settings:
    env = os.environ
    p = argparse.ArgumentParser(
        description="Print Lifeline events as JSON lines from a durable pull consumer."
    )
    p.add_argument("--nats-url", default=env.get("NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument(
        "--stream",
        default=env.get("LIFELINE_EVENTS_STREAM", "LIFELINE_EVENTS"),
        help="the events stream (default LIFELINE_EVENTS)",
    )
    p.add_argument(
        "--subject-root",
        default=env.get("LIFELINE_SUBJECT_ROOT", "lifeline"),
        help="root of the subjects <root>.events.v1.<event>.<platform>.<account_id>",
    )
    p.add_argument(
        "--durable",
        default=env.get("LIFELINE_EXAMPLE_DURABLE", "example-python"),
        help="name of this subscriber's durable consumer (replicas share it)",
    )
    p.add_argument("--count", type=int, default=None, help="exit after this many events")
    p.add_argument(
        "--idle",
        type=float,
        default=None,
        help="exit after this many seconds without a message (default: wait forever)",
    )
    a = p.parse_args(argv)
    if a.count is not None and a.count < 1:
        p.error("--count must be at least 1")
    if a.idle is not None and a.idle <= 0:
        p.error("--idle must be positive")
    return Settings(
        nats_url=a.nats_url,
        stream=a.stream,
        subject_root=a.subject_root,
        durable=a.durable,
        count=a.count,
        idle=a.idle if a.idle is not None else float("inf"),
    )


def log(level: str, message: str, **fields: Any) -> None:
    """Diagnostics go to stderr as JSON, so stdout holds only events."""
    print(json.dumps({"level": level, "message": message, **fields}), file=sys.stderr, flush=True)


def decode(subject_root: str, msg: Msg) -> dict[str, Any]:
    """The JSON line for one message; raises Undecodable for anything off-contract."""
    prefix = f"{subject_root}.events.v1."
    if not msg.subject.startswith(prefix):
        raise Undecodable(f"subject {msg.subject!r} is not {prefix}<event>.<platform>.<account>")
    tokens = msg.subject[len(prefix) :].split(".")
    if len(tokens) != 3:
        raise Undecodable(f"subject {msg.subject!r} is not {prefix}<event>.<platform>.<account>")
    event, subject_platform, subject_account = tokens
    message_type = MESSAGE_TYPES.get(event)
    if message_type is None:
        raise Undecodable(f"unknown event {event!r} (a newer producer?)")
    message = message_type()
    try:
        message.ParseFromString(msg.data)
    except DecodeError as e:
        raise Undecodable(f"payload is not a valid {message_type.__name__}: {e}") from e
    envelope: pb.Envelope = message.envelope
    # A platform value this build does not know (a newer schema) falls back to the subject's.
    known = envelope.platform in pb.Platform.values()
    platform_name = pb.Platform.Name(envelope.platform) if known else ""
    platform = platform_name.removeprefix("PLATFORM_").lower() or subject_platform
    occurred_at = envelope.occurred_at.ToJsonString() if envelope.HasField("occurred_at") else None
    fields = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
    )
    fields.pop("envelope", None)
    headers = msg.headers or {}
    return {
        "event": event,
        "event_id": envelope.event_id,
        "account_id": envelope.account_id or subject_account,
        "platform": platform,
        "workspace_id": envelope.workspace_id,
        "occurred_at": occurred_at,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "stream_sequence": msg.metadata.sequence.stream,
        "msg_id": headers.get("Nats-Msg-Id"),
        "traceparent": headers.get("traceparent"),
        "payload": fields,
    }


async def consume(settings: Settings) -> int:
    nc = await nats.connect(settings.nats_url, name=settings.durable)
    try:
        js = nc.jetstream()
        # Creating the durable is idempotent: a restart (or another replica) finds it and goes on
        # where the acknowledgements left off.
        await js.add_consumer(
            settings.stream,
            ConsumerConfig(
                durable_name=settings.durable,
                filter_subject=f"{settings.subject_root}.events.v1.>",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,
                max_deliver=10,
            ),
        )
        sub = await js.pull_subscribe_bind(durable=settings.durable, stream=settings.stream)
        log("info", "consuming", stream=settings.stream, durable=settings.durable)
        printed = 0
        while settings.count is None or printed < settings.count:
            try:
                # One at a time: the line for message n is out before message n+1 is fetched.
                msgs = await sub.fetch(1, timeout=min(settings.idle, 3600.0))
            except NatsTimeoutError:
                if settings.idle != float("inf"):
                    log("info", "idle, exiting", seconds=settings.idle, printed=printed)
                    return 0
                continue
            for msg in msgs:
                try:
                    line = decode(settings.subject_root, msg)
                except Undecodable as e:
                    log(
                        "warn",
                        "terminating undecodable message",
                        subject=msg.subject,
                        stream_sequence=msg.metadata.sequence.stream,
                        error=str(e),
                    )
                    await msg.term()
                    continue
                # Compact, sorted and unescaped: the same bytes as the TypeScript example prints.
                text = json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                print(text, flush=True)
                await msg.ack_sync()
                printed += 1
        return 0
    finally:
        # Every printed message is acknowledged already (ack_sync), so nothing is left to drain.
        await nc.close()


def main() -> int:
    settings = parse_args(sys.argv[1:])
    try:
        return asyncio.run(consume(settings))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
