#!/usr/bin/env node
// Drift check between docs/asyncapi.yaml, the Rust code and the protobuf schema.
//
//   node asyncapi-drift.mjs check [--quiet] <asyncapi.yaml> <buf-image.json>   check the document
//   node asyncapi-drift.mjs self-test <asyncapi.yaml> <buf-image.json>   prove the check can fail
//   node asyncapi-drift.mjs write     <asyncapi.yaml> <buf-image.json>   regenerate its payload schemas
//   node asyncapi-drift.mjs payloads  <buf-image.json>                   print them
//
// The code's side comes from the sources: the `events!` block and the subject builders in
// shared/events/src/lib.rs, the stream settings in shared/kit/src/bus/mod.rs, the key-value bucket
// wherever a service names it. The document is read through @asyncapi/parser (with the protobuf
// schema parser the CLI registers), so a document the parser rejects fails the check too.
// The image is `buf build proto -o -#format=json`.
// ASYNCAPI_NODE_MODULES points at the node_modules of the @asyncapi/cli install.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODULES = path.resolve(process.env.ASYNCAPI_NODE_MODULES || path.join(REPO, '.run/tools/asyncapi/node_modules'));
const require = createRequire(path.join(MODULES, 'noop.js'));
const PROTO_FORMAT = 'application/vnd.google.protobuf;version=3';
const PACKAGE = 'lifeline.events.v1';

class SourceError extends Error {}

// ---- the code's side ---------------------------------------------------------------------------

function read(root, rel) {
  const file = path.join(root, rel);
  if (!fs.existsSync(file)) throw new SourceError(`${rel} not found`);
  return fs.readFileSync(file, 'utf8');
}

// The body of the first `{ … }` after `start` in `text`, braces balanced (strings ignored: the
// blocks read here contain no braces inside strings except format strings, which balance).
function block(text, start, what) {
  const at = text.search(start);
  if (at < 0) throw new SourceError(`cannot find ${what}`);
  const open = text.indexOf('{', at);
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return text.slice(open + 1, i);
  }
  throw new SourceError(`unbalanced braces in ${what}`);
}

function formatString(body, what) {
  const m = body.match(/format!\(\s*"([^"]+)"/);
  if (!m) throw new SourceError(`no format! string in ${what}`);
  return m[1];
}

// `root` is the repository (the self-test passes a broken copy of the sources).
export function codeFacts(root = REPO) {
  const lib = read(root, 'shared/events/src/lib.rs');
  // The invocation, not the `macro_rules! events` definition above it.
  const invocation = block(lib, /^events!\s*\{/m, 'the `events! { … }` invocation in shared/events/src/lib.rs');
  const entries = invocation
    .split('\n')
    .map((l) => l.replace(/\/\/.*$/, '').trim())
    .filter((l) => l.length > 0);
  const events = entries.map((line) => {
    const m = line.match(/^([A-Z][A-Za-z0-9]*)\s*=>\s*"([a-z][a-z0-9_]*)"\s*,?$/);
    if (!m) throw new SourceError(`cannot parse this line of the events! block: ${line}`);
    return { message: m[1], name: m[2] };
  });
  if (events.length === 0) throw new SourceError('the events! block lists no event');

  const version = (lib.match(/pub const VERSION: &str = "([^"]+)";/) || [])[1];
  if (!version) throw new SourceError('cannot find `pub const VERSION` in shared/events/src/lib.rs');
  const subjectRoot = (block(lib, /impl Default for Subjects/, 'impl Default for Subjects').match(/Subjects::new\("([^"]+)"\)/) || [])[1];
  if (!subjectRoot) throw new SourceError('cannot find the default subject root (Subjects::new("…"))');
  const eventFormat = formatString(block(lib, /pub fn event\(/, 'Subjects::event'), 'Subjects::event');
  const dlqFormat = formatString(block(lib, /pub fn dlq\(/, 'Subjects::dlq'), 'Subjects::dlq');
  const subject = (fmt, name) => {
    const s = fmt.replace('{}', subjectRoot).replace('{VERSION}', version);
    return name === undefined ? s : s.replace('{name}', name);
  };
  const platforms = [...block(lib, /pub fn as_str\(self\)/, 'Platform::as_str').matchAll(/Platform::\w+ => "([a-z]+)"/g)].map((m) => m[1]);
  if (platforms.length === 0) throw new SourceError('Platform::as_str lists no platform');

  const bus = read(root, 'shared/kit/src/bus/mod.rs');
  const streamPrefix = (read(root, 'shared/kit/src/config/mod.rs').match(/"LIFELINE_STREAM_PREFIX",\s*"([^"]+)"/) || [])[1];
  if (!streamPrefix) throw new SourceError('cannot find the default LIFELINE_STREAM_PREFIX');
  const streams = {};
  for (const [variable, suffix] of [['events', 'EVENTS'], ['dlq', 'DLQ']]) {
    const body = block(bus, new RegExp(`let ${variable} = stream::Config`), `the ${variable} stream::Config in bus/mod.rs`);
    const secs = (key) => {
      const m = body.match(new RegExp(`${key}: Duration::from_secs\\(([0-9_ *]+)\\)`));
      if (!m) throw new SourceError(`no ${key} in the ${variable} stream config`);
      return m[1].split('*').reduce((a, x) => a * Number(x.trim().replace(/_/g, '')), 1);
    };
    const enumOf = (key) => {
      const m = body.match(new RegExp(`${key}: \\w+::(\\w+)`));
      if (!m) throw new SourceError(`no ${key} in the ${variable} stream config`);
      return m[1].toLowerCase();
    };
    streams[`${streamPrefix}_${suffix}`] = {
      maxAgeSeconds: secs('max_age'),
      duplicateWindowSeconds: secs('duplicate_window'),
      retention: enumOf('retention'),
      storage: enumOf('storage'),
    };
  }

  // The key-value bucket: whichever Rust source names `<prefix>_ACCOUNTS` (literally or as
  // format!("{}_ACCOUNTS", prefix)).
  // Its keys: the format! of `fn key_of` in a file that names it (the writer's), e.g.
  // ("{}.{}", about.workspace_id, about.account_id) -> {workspace_id}.{account_id}.
  const bucketFiles = [];
  const buckets = new Map();
  const walk = (dir) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && e.name !== 'target') walk(p);
      else if (e.name.endsWith('.rs')) {
        const text = fs.readFileSync(p, 'utf8');
        if (!text.includes(`"${streamPrefix}_ACCOUNTS"`) && !/"\{[a-z_]*\}_ACCOUNTS"/.test(text)) continue;
        const rel = path.relative(root, p);
        bucketFiles.push(rel);
        const m = text.match(/fn key_of\([^)]*\)[^{]*\{\s*format!\(\s*"([^"]+)",\s*([^)]+)\)/);
        if (!m) continue;
        const args = m[2].split(',').map((a) => a.trim().split('.').pop()).filter(Boolean);
        let key = m[1];
        for (const a of args) key = key.replace('{}', `{${a}}`);
        if (key.includes('{}')) throw new SourceError(`cannot read the key format of ${rel}: ${m[0]}`);
        buckets.set(`${streamPrefix}_ACCOUNTS`, key);
      }
    }
  };
  for (const dir of ['services', 'shared']) walk(path.join(root, dir));
  if (bucketFiles.length > 0 && buckets.size === 0) {
    throw new SourceError(`${bucketFiles.join(', ')} name the ${streamPrefix}_ACCOUNTS bucket, but none has a \`fn key_of\` building its keys with format!`);
  }

  return {
    events: events.map((e) => ({ ...e, subject: subject(eventFormat, e.name) })),
    dlq: subject(dlqFormat),
    platforms,
    streams,
    buckets: [...buckets].map(([b, key]) => ({ name: b, subject: `$KV.${b}.${key}`, message: 'AccountState' })),
  };
}

// ---- the proto side: a self-contained proto3 source per message, from the buf image -----------

const SCALARS = {
  TYPE_DOUBLE: 'double', TYPE_FLOAT: 'float', TYPE_INT64: 'int64', TYPE_UINT64: 'uint64',
  TYPE_INT32: 'int32', TYPE_FIXED64: 'fixed64', TYPE_FIXED32: 'fixed32', TYPE_BOOL: 'bool',
  TYPE_STRING: 'string', TYPE_BYTES: 'bytes', TYPE_UINT32: 'uint32', TYPE_SFIXED32: 'sfixed32',
  TYPE_SFIXED64: 'sfixed64', TYPE_SINT32: 'sint32', TYPE_SINT64: 'sint64',
};

export function protoTypes(image) {
  const types = new Map(); // short name -> { kind, def, comments, file }
  for (const file of image.file) {
    if (file.package !== PACKAGE) continue;
    const comments = new Map();
    for (const loc of (file.sourceCodeInfo || {}).location || []) {
      if (loc.leadingComments) comments.set(loc.path.join('.'), loc.leadingComments);
    }
    (file.messageType || []).forEach((def, i) => types.set(def.name, { kind: 'message', def, path: `4.${i}`, comments, file: file.name }));
    (file.enumType || []).forEach((def, i) => types.set(def.name, { kind: 'enum', def, path: `5.${i}`, comments, file: file.name }));
  }
  return types;
}

function commentLines(text, indent) {
  if (!text) return [];
  return text.replace(/\n$/, '').split('\n').map((l) => `${indent}//${l.replace(/\s+$/, '')}`);
}

export function protoSource(types, rootName) {
  const order = [...types.keys()];
  const needed = new Set();
  let timestamp = false;
  const visit = (name) => {
    if (needed.has(name)) return;
    const t = types.get(name);
    if (!t) throw new SourceError(`proto type ${name} is not in package ${PACKAGE}`);
    needed.add(name);
    if (t.kind !== 'message') return;
    for (const f of t.def.field || []) {
      if (f.typeName === '.google.protobuf.Timestamp') timestamp = true;
      else if (f.typeName) visit(f.typeName.replace(`.${PACKAGE}.`, ''));
    }
  };
  visit(rootName);
  const out = ['syntax = "proto3";', '', `package ${PACKAGE};`, ''];
  if (timestamp) out.push('import "google/protobuf/timestamp.proto";', '');
  for (const name of order.filter((n) => needed.has(n))) {
    const t = types.get(name);
    out.push(...commentLines(t.comments.get(t.path), ''));
    if (t.kind === 'enum') {
      out.push(`enum ${name} {`);
      (t.def.value || []).forEach((v, j) => {
        out.push(...commentLines(t.comments.get(`${t.path}.2.${j}`), '  '));
        out.push(`  ${v.name} = ${v.number};`);
      });
    } else {
      out.push(`message ${name} {`);
      (t.def.field || []).forEach((f, j) => {
        const type = f.typeName === '.google.protobuf.Timestamp' ? 'google.protobuf.Timestamp'
          : f.typeName ? f.typeName.replace(`.${PACKAGE}.`, '') : SCALARS[f.type];
        const label = f.label === 'LABEL_REPEATED' ? 'repeated ' : f.proto3Optional ? 'optional ' : '';
        out.push(...commentLines(t.comments.get(`${t.path}.2.${j}`), '  '));
        out.push(`  ${label}${type} ${f.name} = ${f.number};`);
      });
    }
    out.push('}', '');
  }
  return out.join('\n');
}

// The root messages a document's payloads must carry: every message no other message uses.
function rootMessages(types) {
  const used = new Set();
  for (const t of types.values()) {
    if (t.kind !== 'message') continue;
    for (const f of t.def.field || []) if (f.typeName) used.add(f.typeName.replace(`.${PACKAGE}.`, ''));
  }
  return [...types.keys()].filter((n) => types.get(n).kind === 'message' && !used.has(n));
}

function payloadsYaml(types) {
  const yaml = require('js-yaml');
  const schemas = {};
  for (const name of rootMessages(types)) schemas[name] = { schemaFormat: PROTO_FORMAT, schema: protoSource(types, name) };
  return yaml.dump({ schemas }, { lineWidth: -1 });
}

// Everything after this line of the document is the generated payload schemas.
const MARKER = '    # Generated from proto/ (asyncapi-drift.mjs write): everything below this line.';

// Replaces the generated part of the document (the rest is written by hand and kept as it is).
function writePayloads(docFile, types) {
  const text = fs.readFileSync(docFile, 'utf8');
  const at = text.indexOf(`\n${MARKER}\n`);
  if (at < 0) throw new SourceError(`${docFile} has no line "${MARKER.trim()}" under components.schemas`);
  const generated = payloadsYaml(types)
    .split('\n')
    .slice(1) // "schemas:"
    .map((l) => (l.length ? `  ${l}` : l))
    .join('\n');
  fs.writeFileSync(docFile, `${text.slice(0, at)}\n${MARKER}\n${generated.replace(/\n*$/, '\n')}`);
}

// ---- the check ---------------------------------------------------------------------------------

async function parseDocument(file) {
  const { Parser } = require('@asyncapi/parser');
  const { ProtoBuffSchemaParser } = require('@asyncapi/protobuf-schema-parser');
  const parser = new Parser();
  parser.registerSchemaParser(ProtoBuffSchemaParser());
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'), { source: path.resolve(file) });
  const errors = diagnostics.filter((d) => d.severity === 0);
  return { document, errors };
}

// Every message and enum name a parsed payload schema mentions (its title, and `x-type` of
// fields, which the protobuf schema parser sets to the proto type's name).
function mentionedTypes(schema, into) {
  if (schema === null || typeof schema !== 'object') return into;
  if (typeof schema.title === 'string') into.add(schema.title);
  if (typeof schema['x-type'] === 'string') into.add(schema['x-type']);
  for (const v of Object.values(schema)) mentionedTypes(v, into);
  return into;
}

export async function check(docFile, image) {
  const results = [];
  const ok = (msg) => results.push({ ok: true, msg });
  const fail = (msg) => results.push({ ok: false, msg });

  const code = codeFacts();
  const types = protoTypes(image);
  const { document, errors } = await parseDocument(docFile);
  if (!document) {
    for (const e of errors) fail(`parser: ${e.message} at ${e.path.join('.')}`);
    return results;
  }

  const channels = new Map();
  for (const ch of document.channels()) {
    const payloads = ch.messages().all().map((m) => m.payload()?.title()).filter(Boolean);
    channels.set(ch.address(), { ch, payloads, sends: ch.operations().filterBySend().length });
  }
  const expectChannel = (address, message, what) => {
    const c = channels.get(address);
    if (!c) return fail(`${what}: no channel with address ${address}`);
    if (message && !c.payloads.includes(message)) return fail(`${what}: channel ${address} does not carry ${PACKAGE}.${message}`);
    if (c.sends === 0) return fail(`${what}: no send operation on ${address}`);
    ok(`${what}: ${address}${message ? ` carries ${message}` : ''}`);
  };
  const expectParameter = (address, name, values) => {
    const c = channels.get(address);
    if (!c) return;
    const p = c.ch.parameters().get(name);
    if (!p) return fail(`${address}: no parameter ${name}`);
    if (values) {
      const got = [...(p.schema().enum() || [])].sort().join(',');
      if (got !== [...values].sort().join(',')) fail(`${address}: parameter ${name} enum is [${got}], the code has [${values.join(',')}]`);
    }
  };

  for (const e of code.events) {
    expectChannel(e.subject, e.message, `event ${e.name}`);
    expectParameter(e.subject, 'platform', code.platforms);
    expectParameter(e.subject, 'account_id');
  }
  expectChannel(code.dlq, null, 'dead letters');
  for (const [, name] of code.dlq.matchAll(/\{([a-z_]+)\}/g)) expectParameter(code.dlq, name);
  if (code.buckets.length === 0) fail('key-value bucket: no Rust source names a <prefix>_ACCOUNTS bucket, but the document is expected to describe LIFELINE_ACCOUNTS');
  for (const b of code.buckets) {
    expectChannel(b.subject, b.message, `key-value bucket ${b.name}`);
    for (const [, name] of b.subject.matchAll(/\{([a-z_]+)\}/g)) expectParameter(b.subject, name);
  }
  const known = new Set([...code.events.map((e) => e.subject), code.dlq, ...code.buckets.map((b) => b.subject)]);
  for (const address of channels.keys()) {
    if (!known.has(address)) fail(`channel ${address} is in the document but the code publishes no such subject`);
  }

  // Every proto message and enum is referenced by some payload.
  const mentioned = new Set();
  for (const m of document.allMessages()) mentionedTypes(m.payload()?.json(), mentioned);
  for (const [name, t] of types) {
    if (mentioned.has(name)) ok(`proto ${t.kind} ${PACKAGE}.${name} is referenced`);
    else fail(`proto ${t.kind} ${PACKAGE}.${name} is not referenced by any message payload`);
  }

  // Each protobuf payload is the current proto (compared with what `payloads` generates).
  const raw = require('js-yaml').load(fs.readFileSync(docFile, 'utf8'));
  for (const [name, s] of Object.entries(raw?.components?.schemas || {})) {
    if (s?.schemaFormat !== PROTO_FORMAT) continue;
    if (!types.has(name)) { fail(`schema ${name}: no such message in the proto`); continue; }
    const want = protoSource(types, name);
    if (s.schema === want) { ok(`schema ${name} matches the proto`); continue; }
    const [a, b] = [String(s.schema).split('\n'), want.split('\n')];
    const line = a.findIndex((l, i) => l !== b[i]);
    fail(`schema ${name} differs from the proto at its line ${line + 1}: document has "${(a[line] ?? '').trim()}", proto has "${(b[line] ?? '').trim()}" (regenerate: bash scripts/contracts/asyncapi.sh --write)`);
  }

  // The streams' settings, as bus/mod.rs creates them.
  const described = raw?.info?.['x-jetstream-streams'] || {};
  for (const [name, want] of Object.entries(code.streams)) {
    const got = described[name];
    if (!got) { fail(`stream ${name}: not described in info.x-jetstream-streams`); continue; }
    const diffs = Object.entries(want).filter(([k, v]) => got[k] !== v).map(([k, v]) => `${k} is ${got[k]}, code has ${v}`);
    if (diffs.length) fail(`stream ${name}: ${diffs.join('; ')}`);
    else ok(`stream ${name}: ${Object.entries(want).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  return results;
}

// ---- the self-test -----------------------------------------------------------------------------

// Runs the check on temp copies of the document, each broken one way, and requires the check to
// name that failure; the unbroken copy must pass.
async function selfTest(docFile, image) {
  const yaml = require('js-yaml');
  const code = codeFacts();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'asyncapi-drift-'));
  let failures = 0;
  try {
    const base = yaml.load(fs.readFileSync(docFile, 'utf8'));
    const channelKey = (doc, address) => Object.keys(doc.channels).find((k) => doc.channels[k].address === address);
    const dropOperationsOn = (doc, key) => {
      for (const [id, op] of Object.entries(doc.operations)) if (op.channel.$ref === `#/channels/${key}`) delete doc.operations[id];
    };
    const victimEvent = code.events[0];
    const victimMessage = code.events[code.events.length - 1];
    const cases = [
      { name: 'unchanged document', edit: () => {}, expect: null },
      {
        name: `channel of ${victimEvent.name} removed`,
        edit: (doc) => { const k = channelKey(doc, victimEvent.subject); delete doc.channels[k]; dropOperationsOn(doc, k); return k; },
        expect: `event ${victimEvent.name}: no channel with address ${victimEvent.subject}`,
      },
      {
        name: `message ${victimMessage.message} unreferenced`,
        edit: (doc) => {
          const k = channelKey(doc, victimMessage.subject);
          // Its channel and operation now carry another event's message instead.
          const other = Object.keys(doc.components.messages).find((m) => m !== victimMessage.message && m !== 'AccountState');
          doc.channels[k].messages = { [other]: { $ref: `#/components/messages/${other}` } };
          for (const op of Object.values(doc.operations)) {
            if (op.channel.$ref === `#/channels/${k}`) op.messages = [{ $ref: `#/channels/${k}/messages/${other}` }];
          }
          delete doc.components.messages[victimMessage.message];
          delete doc.components.schemas[victimMessage.message];
          return k;
        },
        expect: `proto message ${PACKAGE}.${victimMessage.message} is not referenced by any message payload`,
      },
      {
        name: 'payload AuthFailed stale (a field renumbered)',
        edit: (doc) => {
          const before = doc.components.schemas.AuthFailed.schema;
          doc.components.schemas.AuthFailed.schema = before.replace(/^(\s*string detail = )4;$/m, '$114;');
          return doc.components.schemas.AuthFailed.schema !== before;
        },
        expectPrefix: 'schema AuthFailed differs from the proto',
      },
    ];
    for (const c of cases) {
      const doc = structuredClone(base);
      const touched = c.edit(doc);
      if ((c.expect || c.expectPrefix) && !touched) { console.log(`FAIL self-test ${c.name}: the edit found nothing to change`); failures++; continue; }
      const file = path.join(dir, 'asyncapi.yaml');
      fs.writeFileSync(file, yaml.dump(doc, { lineWidth: -1 }));
      const results = await check(file, image);
      const failed = results.filter((r) => !r.ok).map((r) => r.msg);
      if (c.expectPrefix) {
        const hit = failed.find((f) => f.startsWith(c.expectPrefix));
        if (hit) console.log(`ok   self-test ${c.name}: fails with "${hit}"`);
        else { console.log(`FAIL self-test ${c.name}: expected "${c.expectPrefix}…", got:\n  ${failed.join('\n  ') || '(no failure)'}`); failures++; }
      } else if (!c.expect) {
        if (failed.length === 0) console.log(`ok   self-test ${c.name}: passes (${results.length} checks)`);
        else { console.log(`FAIL self-test ${c.name}: expected to pass, got:\n  ${failed.join('\n  ')}`); failures++; }
      } else if (failed.includes(c.expect)) {
        console.log(`ok   self-test ${c.name}: fails with "${c.expect}"`);
      } else {
        console.log(`FAIL self-test ${c.name}: expected "${c.expect}", got:\n  ${failed.join('\n  ') || '(no failure)'}`);
        failures++;
      }
    }
    // The code's side fails loudly too: an events! block that is gone or lists nothing.
    const lib = fs.readFileSync(path.join(REPO, 'shared/events/src/lib.rs'), 'utf8');
    const sourceCases = [
      { name: 'events! block renamed', edit: (t) => t.replace(/^events!\s*\{/m, 'lifeline_events! {'), expect: 'cannot find the `events! { … }` invocation' },
      { name: 'events! block emptied', edit: (t) => t.replace(/^(events!\s*\{)[^}]*\}/m, '$1\n}'), expect: 'the events! block lists no event' },
      { name: 'events! line unparsable', edit: (t) => t.replace(/^(events!\s*\{\n)/m, '$1    TokenExpiring => token_expiring,\n'), expect: 'cannot parse this line of the events! block' },
    ];
    for (const c of sourceCases) {
      const root = path.join(dir, 'src');
      fs.mkdirSync(path.join(root, 'shared/events/src'), { recursive: true });
      const edited = c.edit(lib);
      if (edited === lib) { console.log(`FAIL self-test ${c.name}: the edit found nothing to change`); failures++; continue; }
      fs.writeFileSync(path.join(root, 'shared/events/src/lib.rs'), edited);
      let message = '(no failure)';
      try { codeFacts(root); } catch (e) { message = e.message; }
      if (message.includes(c.expect)) console.log(`ok   self-test ${c.name}: fails with "${message}"`);
      else { console.log(`FAIL self-test ${c.name}: expected "${c.expect}", got ${message}`); failures++; }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return failures;
}

// ---- main --------------------------------------------------------------------------------------

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  const loadImage = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
  try {
    if (cmd === 'payloads' && args.length === 1) {
      process.stdout.write(payloadsYaml(protoTypes(loadImage(args[0]))));
    } else if (cmd === 'write' && args.length === 2) {
      writePayloads(args[0], protoTypes(loadImage(args[1])));
      console.log(`ok   ${args[0]}: payload schemas regenerated from the proto`);
    } else if (cmd === 'check' && (args.length === 2 || (args.length === 3 && args[0] === '--quiet'))) {
      const quiet = args.length === 3;
      const [doc, image] = args.slice(-2);
      const results = await check(doc, loadImage(image));
      for (const r of results) if (!r.ok || !quiet) console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.msg}`);
      const failed = results.filter((r) => !r.ok).length;
      console.log(failed ? `FAIL drift check: ${failed} of ${results.length} checks failed`
        : `ok   drift check: ${results.length} checks pass (channels, operations and parameters of every code subject, proto types referenced, payloads current, stream settings)`);
      process.exitCode = failed ? 1 : 0;
    } else if (cmd === 'self-test' && args.length === 2) {
      const failures = await selfTest(args[0], loadImage(args[1]));
      console.log(failures ? `FAIL drift self-test: ${failures} case(s) failed` : 'ok   drift self-test: all cases behave');
      process.exitCode = failures ? 1 : 0;
    } else {
      console.error('usage: asyncapi-drift.mjs check [--quiet] <asyncapi.yaml> <image.json> | self-test|write <asyncapi.yaml> <image.json> | payloads <image.json>');
      process.exitCode = 2;
    }
  } catch (e) {
    if (e instanceof SourceError) { console.log(`FAIL ${e.message}`); process.exitCode = 1; } else throw e;
  }
}

await main();
