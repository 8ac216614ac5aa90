#!/usr/bin/env python3
"""Import circles among the module files of one Rust crate.

Usage: scripts/import-cycles.py CRATE/src [--children] [--edges]

Maps every module file under src/ (the library's; main.rs and bin/ are other
crates) to the module files it refers to through `crate::...` and `super::...`
paths (use trees included: `use crate::{a, b::{c, d}}`), then prints each
strongly connected component of more than one file (Tarjan's algorithm).

A path resolves to the file of its longest prefix that names a module, so
`crate::accounts::User` is accounts.rs and `super::wire::ok` in x/api.rs is
x/wire.rs. A file referring to itself (`use super::*` in its own test module)
is no edge.

--children also counts bare paths into a child module the file declares
(`mod api;` ... `api::handler`): a folder's mod.rs routing to its own files
and those files using `super::Ctx` then show up as a circle, which is how
Rust folders are usually built, hence off by default.
--edges prints every edge first.

Python 3 standard library only.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text):
    """Blanks out comments, strings and char literals, keeping newlines and
    braces of code, so the scanners below only see code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 300]) if c in "rb" else None
        if m and (i == 0 or not re.match(r"[A-Za-z0-9_]", text[i - 1])):
            close = '"' + m.group(1)
            end = text.find(close, i + m.end())
            end = n if end < 0 else end + len(close)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
            continue
        if c == '"' or (c == "b" and nxt == '"'):
            i += 2 if c == "b" else 1
            start = i
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", start, i))
            i += 1
            continue
        if c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if nxt == "\\":
                end = text.find("'", i + 2)
                if end > 0:
                    out.append("' '")
                    i = end + 1
                    continue
            elif i + 2 < n and text[i + 2] == "'":
                out.append("' '")
                i += 3
                continue
        out.append(c)
        i += 1
    return "".join(out)


def module_of(rel):
    """src-relative file path → module path (a tuple of names)."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("lib", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def inline_modules(code):
    """(start, end, name path) of every `mod name { ... }` in a file."""
    spans, stack, depth = [], [], 0
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{|[{}]", code):
        tok = m.group(0)
        if tok.startswith("mod"):
            depth += 1
            stack.append((m.group(1), depth, m.start()))
        elif tok == "{":
            depth += 1
        else:
            if stack and stack[-1][1] == depth:
                name, _, start = stack.pop()
                spans.append((start, m.end(), tuple(s[0] for s in stack) + (name,)))
            depth -= 1
    return spans


def tokens(code, pos):
    """Path tokens from `pos`: identifiers, '::', '{', '}', ',', '*'; stops at
    anything else (a `;`, a `(`, an operator)."""
    tok_re = re.compile(r"\s*(::|" + IDENT + r"|[{},*])")
    while True:
        m = tok_re.match(code, pos)
        if not m:
            return
        yield m.group(1)
        pos = m.end()


def parse_tree(toks, prefix, out):
    """Parses one use tree (or a plain path) from the token iterator; appends
    every full path to `out`. Returns the token that ended it."""
    path = list(prefix)
    expect_ident = True
    for t in toks:
        if t == "}" and len(path) == len(prefix):
            # The end of a group after a trailing comma (`{ a::X, b::Y, }`): no path here.
            return t
        if t == "{":
            while True:
                end = parse_tree(toks, path, out)
                if end != ",":
                    break
            return next(toks, None)
        if t == "*":
            out.append(tuple(path))
            return next(toks, None)
        if t == "::":
            expect_ident = True
            continue
        if t == "as" and not expect_ident:
            # `path as alias`: the alias names nothing new.
            out.append(tuple(path))
            next(toks, None)
            return next(toks, None)
        if re.fullmatch(IDENT, t) and expect_ident:
            path.append(t)
            expect_ident = False
            continue
        out.append(tuple(path))
        return t
    out.append(tuple(path))
    return None


def references(code, here, children):
    """Absolute module paths referred to from a file whose module is `here`."""
    spans = inline_modules(code)
    roots = r"crate|super|self"
    if children:
        roots += "|" + "|".join(re.escape(c) for c in children)
    found = []
    for m in re.finditer(r"(?<![A-Za-z0-9_$:])(" + roots + r")\s*::", code):
        inner = [s for s in spans if s[0] <= m.start() < s[1]]
        current = here + (max(inner, key=lambda s: s[0])[2] if inner else ())
        paths = []
        parse_tree(tokens(code, m.start()), (), paths)
        for p in paths:
            base, rest = current, list(p)
            if rest and rest[0] == "crate":
                base, rest = (), rest[1:]
            elif rest and rest[0] == "self":
                rest = rest[1:]
            elif rest and rest[0] in children:
                pass
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
            found.append(base + tuple(rest))
    return found, spans


def tarjan(graph):
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1 or not os.path.isdir(args[0]):
        sys.stderr.write(__doc__)
        return 2
    src = args[0]
    want_children = "--children" in argv
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), src)
            if not name.endswith(".rs") or rel == "main.rs" or rel.startswith("bin" + os.sep):
                continue
            files[rel] = module_of(rel)
    codes = {}
    for rel in files:
        with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as f:
            codes[rel] = strip_code(f.read())
    # Every known module path → the file it lives in (inline modules included).
    owner = {mod: rel for rel, mod in files.items()}
    for rel, code in codes.items():
        for _, _, path in inline_modules(code):
            owner.setdefault(files[rel] + path, rel)

    graph = {rel: set() for rel in files}
    for rel, code in codes.items():
        here = files[rel]
        children = set()
        if want_children:
            children = set(re.findall(r"\bmod\s+(" + IDENT + r")\s*;", code))
        found, _ = references(code, here, children)
        for path in found:
            for cut in range(len(path), -1, -1):
                target = owner.get(path[:cut])
                if target is not None:
                    break
            if target is not None and target != rel:
                graph[rel].add(target)

    if "--edges" in argv:
        for rel in sorted(graph):
            print(f"{rel} -> {', '.join(sorted(graph[rel])) or '-'}")
        print()
    circles = [scc for scc in tarjan(graph) if len(scc) > 1]
    circles.sort(key=lambda s: (-len(s), s))
    for i, scc in enumerate(circles, 1):
        print(f"circle {i} ({len(scc)} files): {' '.join(scc)}")
    largest = max((len(s) for s in circles), default=0)
    print(f"{len(circles)} import circle(s) among {len(files)} module files; largest: {largest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
