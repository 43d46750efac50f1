#!/usr/bin/env python3
"""Where a filter module's bytes go: section sizes, and code and data bytes
by crate, from the module's `name` section (the `filter` profile strips debug
info but keeps symbol names). Standard library only.

    python3 benches/envoy/wasm_sizes.py target/wasm32-wasip1/filter/meshward_authz_filter.wasm

Function names are Rust symbols (legacy `_ZN...E` mangling or plain); a
function is charged to the first path segment of its demangled name, and a
generic instantiated in another crate is charged to the crate whose code it
is (`<T as cedar_policy_core::..>` counts as cedar_policy_core when the
leading segment is a `<...>` impl), which is what removing that crate would
save.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

SECTIONS = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
            6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
            12: "datacount"}


def leb(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def demangle(sym: str) -> str:
    m = re.match(r"_ZN(.*)E$", sym)
    if not m:
        return sym
    body, parts, i = m.group(1), [], 0
    while i < len(body) and body[i].isdigit():
        j = i
        while body[j].isdigit():
            j += 1
        n = int(body[i:j])
        parts.append(body[j:j + n])
        i = j + n
    # Legacy mangling escapes `<`, `>` and friends as `$LT$` etc.
    text = "::".join(p for p in parts if not re.fullmatch(r"h[0-9a-f]{16}", p))
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$C$", ","),
                 ("$u7b$", "{"), ("$u7d$", "}"), ("..", "::"), ("$BP$", "*")):
        text = text.replace(a, b)
    return text


def crate_of(name: str) -> str:
    v0 = re.match(r"_R.*?C(?:s[0-9A-Za-z]*_)?(\d+)", name)
    if v0:
        n = int(v0.group(1))
        return name[v0.end():v0.end() + n]
    name = demangle(name).lstrip("_")
    # `<A as B>::f`: the code is B's trait method instantiated for A; charge
    # the impl's own crate (A's), which is where the body lives unless A is
    # a std type.
    m = re.match(r"<&?(?:mut )?(?:dyn )?([A-Za-z_][A-Za-z0-9_]*)", name)
    if m:
        first = m.group(1)
    else:
        first = re.split(r"::|[<(\s]", name, maxsplit=1)[0]
    return first or "?"


# Groups of code that one design decision keeps or removes, matched on the
# whole demangled name (first match wins). Generic std/alloc/hashbrown code
# instantiated for these crates' types mostly lands in "the rest": legacy
# symbol names carry the impl's path, not its type arguments.
GROUPS = [
    ("cedar parser (text to CST to AST, errors, EST)", r"cedar_policy_core::(parser|est)|\blalrpop"),
    ("cedar validator and schema", r"cedar_policy_core::validator"),
    ("regex, regex-syntax, aho-corasick", r"\b(regex|regex_syntax|regex_automata|aho_corasick)::"),
    ("cedar evaluator, entities, extensions, authorizer, AST",
     r"cedar_policy_core::(evaluator|entities|extensions|authorizer|transitive_closure|ast)"),
    ("cedar, other", r"\bcedar_policy"),
    ("meshward", r"\bmeshward"),
    ("serde, serde_json", r"\bserde(_json|_core)?::"),
    ("x509-parser, der, asn1", r"\b(x509_parser|der|der_parser|asn1_rs)::"),
    ("signature crypto (p256, p384, rsa, ecdsa, sha2, ed25519, bigint)",
     r"\b(p256|p384|rsa|ecdsa|sha2|curve25519_dalek|ed25519_dalek|num_bigint_dig|primeorder|elliptic_curve|crypto_bigint)::"),
    ("jsonwebtoken", r"\bjsonwebtoken::"),
    ("proxy-wasm", r"\bproxy_wasm::"),
]


def analyse(path: Path) -> str:
    buf = path.read_bytes()
    assert buf[:4] == b"\0asm", f"{path} is not a wasm module"
    i, sections, bodies, names, imported = 8, Counter(), [], {}, 0
    while i < len(buf):
        sid = buf[i]
        size, j = leb(buf, i + 1)
        end = j + size
        label = SECTIONS.get(sid, str(sid))
        if sid == 0:
            nlen, k = leb(buf, j)
            cname = buf[k:k + nlen].decode()
            label = f"custom:{cname}"
            if cname == "name":
                k += nlen
                while k < end:
                    sub, k = leb(buf, k)
                    slen, k = leb(buf, k)
                    if sub == 1:
                        count, m = leb(buf, k)
                        for _ in range(count):
                            idx, m = leb(buf, m)
                            ln, m = leb(buf, m)
                            names[idx] = buf[m:m + ln].decode(errors="replace")
                            m += ln
                    k += slen
        elif sid == 2:
            count, k = leb(buf, j)
            for _ in range(count):
                for _ in range(2):
                    ln, k = leb(buf, k)
                    k += ln
                kind = buf[k]
                k += 1
                if kind == 0:
                    _, k = leb(buf, k)
                    imported += 1
                elif kind == 1:
                    k += 1
                    flags, k = leb(buf, k)
                    _, k = leb(buf, k)
                    if flags & 1:
                        _, k = leb(buf, k)
                elif kind == 2:
                    flags, k = leb(buf, k)
                    _, k = leb(buf, k)
                    if flags & 1:
                        _, k = leb(buf, k)
                else:
                    k += 2
        elif sid == 10:
            count, k = leb(buf, j)
            for _ in range(count):
                bsize, k2 = leb(buf, k)
                bodies.append(k2 - k + bsize)
                k = k2 + bsize
        sections[label] += end - i
        i = end
    by_crate, by_group = Counter(), Counter()
    for n, size in enumerate(bodies):
        name = names.get(imported + n, "?")
        by_crate[crate_of(name)] += size
        full = demangle(name)
        group = next((g for g, rx in GROUPS if re.search(rx, full)), "the rest (std, core, alloc, hashbrown, ...)")
        by_group[group] += size
    out = [f"{path.name}: {len(buf):,} bytes, {len(bodies):,} functions", "", "| section | bytes |", "|---|---:|"]
    out += [f"| {k} | {v:,} |" for k, v in sections.most_common()]
    total = sum(bodies) or 1
    out += ["", "| crate (code section, by function name) | bytes | share |", "|---|---:|---:|"]
    for k, v in by_crate.most_common(25):
        out.append(f"| {k} | {v:,} | {100 * v / total:.1f} % |")
    out += ["", "| group (code section) | bytes | share |", "|---|---:|---:|"]
    for k, v in by_group.most_common():
        out.append(f"| {k} | {v:,} | {100 * v / total:.0f} % |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(analyse(Path(arg)))
