// A subscriber of Lifeline's events (docs/events.md): a durable pull consumer on the events
// stream that decodes every event kind and prints one JSON line per event.
//
// Each message is acknowledged only after its effect (here: the printed line) is done; a message
// that cannot be decoded is logged to stderr and terminated, so it is never redelivered.
//
// Run `scripts/examples/setup.sh` first: it generates src/gen/ and compiles to dist/.

import { parseArgs } from "node:util";
import { fromBinary, toJson, type DescMessage, type JsonObject } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import {
  AccountConnectedSchema,
  AccountDisconnectedSchema,
  AccountFlappingSchema,
  AccountReconnectedSchema,
  AuthFailedSchema,
  type Envelope,
  Platform,
  PostDeadLetteredSchema,
  PostCancelledSchema,
  PostFailedSchema,
  PostPublishedSchema,
  PostRetryRequestedSchema,
  TokenExpiringSchema,
  TokenRefreshedSchema,
} from "./gen/lifeline/events/v1/events_pb.js";

/** The subject's `<event>` segment names the payload's message type: the public contract. */
const MESSAGE_TYPES: ReadonlyMap<string, DescMessage> = new Map<string, DescMessage>([
  ["account_connected", AccountConnectedSchema],
  ["account_reconnected", AccountReconnectedSchema],
  ["account_disconnected", AccountDisconnectedSchema],
  ["auth_failed", AuthFailedSchema],
  ["token_refreshed", TokenRefreshedSchema],
  ["token_expiring", TokenExpiringSchema],
  ["post_retry_requested", PostRetryRequestedSchema],
  ["post_published", PostPublishedSchema],
  ["post_failed", PostFailedSchema],
  ["post_dead_lettered", PostDeadLetteredSchema],
  ["post_cancelled", PostCancelledSchema],
  ["account_flapping", AccountFlappingSchema],
]);

interface Settings {
  natsUrl: string;
  stream: string;
  subjectRoot: string;
  durable: string;
  count: number | undefined;
  /** Seconds without a message after which to exit; undefined waits forever. */
  idle: number | undefined;
}

class Undecodable extends Error {}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: node dist/subscriber.js [--nats-url URL] [--stream NAME] [--subject-root ROOT] ` +
      `[--durable NAME] [--count N] [--idle SECONDS]\n`,
  );
  process.exit(2);
}

function positive(name: string, raw: string | undefined, integer: boolean): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    usage(`--${name} must be a positive ${integer ? "integer" : "number"}, not ${JSON.stringify(raw)}`);
  }
  return n;
}

function parseSettings(argv: string[]): Settings {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "nats-url": { type: "string" },
        stream: { type: "string" },
        "subject-root": { type: "string" },
        durable: { type: "string" },
        count: { type: "string" },
        idle: { type: "string" },
      },
      strict: true,
    }));
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  }
  const env = process.env;
  return {
    natsUrl: values["nats-url"] ?? env["NATS_URL"] ?? "nats://127.0.0.1:4222",
    stream: values.stream ?? env["LIFELINE_EVENTS_STREAM"] ?? "LIFELINE_EVENTS",
    subjectRoot: values["subject-root"] ?? env["LIFELINE_SUBJECT_ROOT"] ?? "lifeline",
    durable: values.durable ?? env["LIFELINE_EXAMPLE_DURABLE"] ?? "example-typescript",
    count: positive("count", values.count, true),
    idle: positive("idle", values.idle, false),
  };
}

/** Diagnostics go to stderr as JSON, so stdout holds only events. */
function log(level: string, message: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, message, ...fields })}\n`);
}

/** Keys sorted, so the line is stable and matches the Python example's form. */
function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function platformName(envelope: Envelope, fromSubject: string): string {
  const name: string | undefined = Platform[envelope.platform];
  return name === undefined || envelope.platform === Platform.UNSPECIFIED ? fromSubject : name.toLowerCase();
}

/** The JSON line for one message; throws Undecodable for anything off-contract. */
export function decode(subjectRoot: string, msg: JsMsg): Record<string, unknown> {
  const prefix = `${subjectRoot}.events.v1.`;
  const tokens = msg.subject.startsWith(prefix) ? msg.subject.slice(prefix.length).split(".") : [];
  const [event, subjectPlatform, subjectAccount] = tokens;
  if (tokens.length !== 3 || event === undefined || subjectPlatform === undefined || subjectAccount === undefined) {
    throw new Undecodable(`subject ${JSON.stringify(msg.subject)} is not ${prefix}<event>.<platform>.<account>`);
  }
  const schema = MESSAGE_TYPES.get(event);
  if (schema === undefined) {
    throw new Undecodable(`unknown event ${JSON.stringify(event)} (a newer producer?)`);
  }
  let message;
  try {
    message = fromBinary(schema, msg.data);
  } catch (e) {
    throw new Undecodable(`payload is not a valid ${schema.name}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Every event message has `envelope` as field 1 (the generated types say so per message; the
  // map above erases the type, so read it back through the one field all of them share).
  const envelope = (message as unknown as { envelope?: Envelope }).envelope;
  if (envelope === undefined) {
    throw new Undecodable(`${schema.name} has no envelope`);
  }
  const fields = toJson(schema, message, { alwaysEmitImplicit: true, useProtoFieldName: true }) as JsonObject;
  delete fields["envelope"];
  return {
    event,
    event_id: envelope.eventId,
    account_id: envelope.accountId || subjectAccount,
    platform: platformName(envelope, subjectPlatform),
    workspace_id: envelope.workspaceId,
    occurred_at: envelope.occurredAt === undefined ? null : toJson(TimestampSchema, envelope.occurredAt),
    correlation_id: envelope.correlationId,
    causation_id: envelope.causationId,
    stream_sequence: msg.seq,
    // A missing header reads as "": print null, as the Python example does.
    msg_id: msg.headers?.get("Nats-Msg-Id") || null,
    traceparent: msg.headers?.get("traceparent") || null,
    payload: fields,
  };
}

async function consume(settings: Settings): Promise<void> {
  const nc = await connect({ servers: settings.natsUrl, name: settings.durable });
  try {
    const jsm = await jetstreamManager(nc);
    // Creating the durable is idempotent: a restart (or another replica) finds it and goes on
    // where the acknowledgements left off.
    await jsm.consumers.add(settings.stream, {
      durable_name: settings.durable,
      filter_subject: `${settings.subjectRoot}.events.v1.>`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 30_000_000_000, // nanoseconds
      max_deliver: 10,
    });
    const consumer = await jetstream(nc).consumers.get(settings.stream, settings.durable);
    log("info", "consuming", { stream: settings.stream, durable: settings.durable });
    // The pull request's expiry is at least 1 s (the client's minimum).
    const expires = settings.idle === undefined ? 30_000 : Math.max(1_000, Math.round(settings.idle * 1_000));
    let printed = 0;
    while (settings.count === undefined || printed < settings.count) {
      // One at a time: the line for message n is out before message n+1 is fetched.
      const msg = await consumer.next({ expires });
      if (msg === null) {
        if (settings.idle !== undefined) {
          log("info", "idle, exiting", { seconds: settings.idle, printed });
          return;
        }
        continue;
      }
      let line: Record<string, unknown>;
      try {
        line = decode(settings.subjectRoot, msg);
      } catch (e) {
        if (!(e instanceof Undecodable)) throw e;
        log("warn", "terminating undecodable message", {
          subject: msg.subject,
          stream_sequence: msg.seq,
          error: e.message,
        });
        // No reason argument: NATS 2.9 does not understand `+TERM <reason>` and leaves the
        // message pending (it would come back after ack_wait).
        msg.term();
        continue;
      }
      await new Promise<void>((resolve, reject) =>
        process.stdout.write(`${sortedJson(line)}\n`, (err) => (err ? reject(err) : resolve())),
      );
      await msg.ackAck();
      printed += 1;
    }
  } finally {
    // Every printed message is acknowledged already (ackAck), so nothing is left to drain.
    await nc.close();
  }
}

consume(parseSettings(process.argv.slice(2))).catch((e: unknown) => {
  log("error", e instanceof Error ? e.message : String(e));
  process.exit(1);
});
