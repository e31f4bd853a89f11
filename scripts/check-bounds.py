#!/usr/bin/env python3
"""The bounds table, checked against the code: what `scripts/test.sh` runs beside
`check-structure.py`.

`docs/bounds.md` lists every channel, queue, cache, frame, connection and buffer with its
named limit and what happens when it is full. Its table rows name the limits in
backticks, and this script holds them to the code:

1. Every backticked constant in a row (a path whose last segment is in capitals:
   `sync::outbound::MESSAGE_FRAGMENT`, `Limits::POLICY_CALL_TICKS`, or a bare
   `MAX_STRANGERS` after a path in the same row, which takes that path's module) is
   defined, as `const NAME` or `static NAME`, in non-test code of a module whose path
   ends with the one written (crate names such as `outpost_core` count as the first
   segment). A struct field with a stated value (`RaftTiming::commit` = 60 s, see 2) must
   be a field of that struct; other `Type::name`s (methods, variants) are prose.
   A row that names no constant or field fails too: every bound has a name.
2. A name followed by `= VALUE` states its value: `` `server::UDP_WORKERS` = 4 ``,
   `= 16 KiB`, `= 1,000,000`, `= 250 ms`, `= 24 h`. The code's value is computed from
   its definition (integer literals, `+ - * / << >>`, `Duration::from_secs/millis`,
   `u16::MAX`, `if cfg!(test) { .. } else { X }` taken as `X`, other constants it names;
   a field's value is the one its type's `DEFAULT` gives it) and must equal the stated
   one exactly. KiB, MiB and GiB are powers of 1024 of an integer; ms, s, min, h and d
   compare with a `Duration` or with an integer constant whose name ends in `_SECS` or
   `_MS`.
3. The reverse: every constant of the product crates whose name looks like a bound
   (BOUND_NAME below: `MAX_*`, `*_TIMEOUT`, `*_DEADLINE`, `*_WAIT`, `*_QUEUE`,
   `*_BUFFER`, `*_CAPACITY`, `*_ENTRIES`, `*LIMIT*`) is named by a row, or is in
   ALLOWED below with the reason it is not a bound of ours.

Prints every problem with the line it is about and exits 1 when there is one.
Run from anywhere: `python3 scripts/check-bounds.py`.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join("docs", "bounds.md")

# Crates whose constants the reverse check (3) covers: the ones shipped in `outpost` and
# `outpost-lite`. The bench and the test harness are searched (1) but not held to it.
PRODUCT_CRATES = ["core", "dns", "plugin-host", "replica", "export", "appliance", "lite-client"]
SEARCHED_CRATES = PRODUCT_CRATES + ["bench/sync", "tests"]

BOUND_NAME = re.compile(
    r"^MAX_|LIMIT|_TIMEOUT$|_DEADLINE$|_WAIT$|_QUEUE$|_BUFFER$|_CAPACITY$|_ENTRIES$"
)

# Bound-like names that docs/bounds.md rightly leaves out, each with the reason. Keys are
# written like the table's names (a module path suffix, then the constant).
ALLOWED = {
    "name::MAX_WIRE_LEN": "RFC 1035's limit on a name, not a resource of ours",
    "name::MAX_LABELS": "follows from MAX_WIRE_LEN (127 labels and the root)",
    "zonefile::names::MAX_LABEL_BYTES": "RFC 1035's label limit, checked when parsing",
    "zonefile::names::MAX_NAME_BYTES": "RFC 1035's name limit, checked when parsing",
    "zonefile::names::MAX_DURATION_SECONDS": "RFC 2181's largest TTL, a parse limit",
    "zonefile::rdata::MAX_CHARACTER_STRING_BYTES": "RFC 1035's <character-string> limit",
    "state::MAX_TTL": "RFC 2181's largest TTL, a validity rule of the model",
    "convert::MAX_CHARACTER_STRING": "RFC 1035's <character-string> limit",
    "sync::session::MAX_CLOSE_REASON": "RFC 6455: a close frame holds 123 bytes of reason",
    "outpost_lite::session::MAX_CLOSE_REASON": "RFC 6455: a close frame holds 123 bytes of reason",
    "zonefile::rdata::MAX_SHOWN_CHARS": "how much of a bad value an error message quotes",
    "zonefile::rdata::u16::MAX_TEXT": "an integer type's largest value as text, for messages",
    "zonefile::rdata::u32::MAX_TEXT": "an integer type's largest value as text, for messages",
}


class Definition:
    def __init__(self, crate, module, name, expr, path, line):
        self.crate, self.module, self.name = crate, module, name
        self.expr, self.path, self.line = expr, path, line

    def segments(self):
        return (self.crate,) + self.module

    def where(self):
        return f"{self.path}:{self.line}"

    def full(self):
        return "::".join(self.segments() + (self.name,))


# ---------------------------------------------------------------- the code's constants


def crate_name(crate_dir):
    with open(os.path.join(ROOT, crate_dir, "Cargo.toml")) as manifest:
        text = manifest.read()
    match = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', text, flags=re.M | re.S)
    return match.group(1).replace("-", "_")


def is_test_file(rel):
    parts = rel.split(os.sep)
    return parts[-1] == "tests.rs" or "tests" in parts[:-1] or "testdata" in parts


def module_of(src, path):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def test_only_modules(path, text):
    """Files declared `#[cfg(test)] mod name;` in this file: test code, skipped."""
    base = os.path.dirname(path) if os.path.basename(path) in ("lib.rs", "main.rs") else path[:-3]
    found = set()
    for match in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod (\w+);", text):
        found.add(os.path.join(base, match.group(1) + ".rs"))
        found.add(os.path.join(base, match.group(1)))
    return found


def strip_test_blocks(lines):
    """Blanks `#[cfg(test)]` items: a `mod tests { .. }` block, or a single item."""
    out = list(lines)
    index = 0
    while index < len(out):
        if out[index].strip() == "#[cfg(test)]":
            out[index] = ""
            index += 1
            if index < len(out) and re.match(r"\s*(pub(\([a-z]+\))?\s+)?mod \w+ \{", out[index]):
                depth = 0
                while index < len(out):
                    depth += out[index].count("{") - out[index].count("}")
                    out[index] = ""
                    index += 1
                    if depth <= 0:
                        break
            elif index < len(out) and re.match(r"\s*(pub(\([a-z]+\))?\s+)?(const|static) ", out[index]):
                out[index] = ""
            continue
        index += 1
    return out


def enclosing_item(lines, index):
    """The `impl Type` or `mod name` a definition is indented in: an extra path segment.
    None for a `fn`'s local constant."""
    indent = len(lines[index]) - len(lines[index].lstrip())
    for back in range(index - 1, -1, -1):
        line = lines[back]
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        if len(line) - len(line.lstrip()) < indent and line.rstrip().endswith("{"):
            impl = re.match(r"\s*impl(?:<[^>]*>)?\s+(?:[\w:<>, ]+\s+for\s+)?(\w+)", line)
            module = re.match(r"\s*(?:pub(?:\([a-z]+\))?\s+)?mod (\w+)", line)
            if impl:
                return impl.group(1)
            if module:
                return module.group(1)
            return None
    return None


DEFINITION = re.compile(
    r"^(\s*)(?:pub(?:\([a-z]+(?: [\w:]+)?\))?\s+)?(?:const|static)\s+([A-Z][A-Z0-9_]*)\s*:\s*[^=]+?=\s*(.*)$"
)


def definitions():
    found = []
    for crate_dir in SEARCHED_CRATES:
        src = os.path.join(ROOT, crate_dir, "src")
        if crate_dir == "tests":
            src = os.path.join(ROOT, crate_dir)
        if not os.path.isdir(src):
            continue
        crate = crate_name(crate_dir)
        skipped = set()
        for directory, subdirs, files in sorted(os.walk(src)):
            subdirs.sort()
            for file in sorted(files):
                path = os.path.join(directory, file)
                rel = os.path.relpath(path, ROOT)
                if not file.endswith(".rs") or is_test_file(os.path.relpath(path, src)):
                    continue
                if path in skipped or any(path.startswith(d + os.sep) for d in skipped):
                    continue
                with open(path) as source:
                    text = source.read()
                skipped |= test_only_modules(path, text)
                lines = strip_test_blocks(text.split("\n"))
                module = module_of(src, path)
                for index, line in enumerate(lines):
                    match = DEFINITION.match(line)
                    if not match:
                        continue
                    expr, end = match.group(3), index
                    while not expr.rstrip().endswith(";") and end + 1 < len(lines):
                        end += 1
                        expr += " " + lines[end].strip()
                    expr = expr.rstrip().rstrip(";")
                    inner = module
                    if match.group(1):
                        item = enclosing_item(lines, index)
                        if item is None:
                            continue  # a function's local constant
                        inner = module + (item,)
                    found.append(Definition(crate, inner, match.group(2), expr, rel, index + 1))
    return found


def resolve(defs, prefix, name, crate=None):
    """The definitions of `name` in a module whose path ends with `prefix`."""
    hits = [
        d for d in defs
        if d.name == name and len(prefix) <= len(d.segments())
        and d.segments()[len(d.segments()) - len(prefix):] == prefix
    ]
    if crate is not None and len(hits) > 1:
        same = [d for d in hits if d.crate == crate]
        hits = same or hits
    return hits


# ---------------------------------------------------------------- values


class Dur:
    """A `Duration`, in nanoseconds."""

    def __init__(self, nanos):
        self.nanos = nanos

    def __mul__(self, other):
        return Dur(self.nanos * other)

    __rmul__ = __mul__

    def __add__(self, other):
        return Dur(self.nanos + other.nanos)

    def __sub__(self, other):
        return Dur(self.nanos - other.nanos)

    def __eq__(self, other):
        return isinstance(other, Dur) and self.nanos == other.nanos

    def __repr__(self):
        return show(self)


def show(value):
    if isinstance(value, Dur):
        for unit, nanos in [("h", 3600 * 10**9), ("min", 60 * 10**9), ("s", 10**9), ("ms", 10**6)]:
            if value.nanos % nanos == 0:
                return f"{value.nanos // nanos} {unit}"
        return f"{value.nanos} ns"
    for unit, size in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]:
        if value >= size and value % size == 0:
            return f"{value} ({value // size} {unit})"
    return str(value)


INT_MAX = {"u8": 2**8 - 1, "u16": 2**16 - 1, "u32": 2**32 - 1, "u64": 2**64 - 1, "i32": 2**31 - 1, "i64": 2**63 - 1}


class NotSimple(Exception):
    pass


def evaluate(defs, definition, seen=()):
    """The value of a constant's expression, or NotSimple."""
    if definition in seen:
        raise NotSimple("it refers to itself")
    expr = definition.expr
    expr = re.sub(r"if cfg!\(test\) \{[^{}]*\} else \{([^{}]*)\}", r"(\1)", expr)
    expr = re.sub(r"\bas [ui](?:8|16|32|64|size)\b", "", expr)
    expr = re.sub(r"\b([ui](?:8|16|32|64))::MAX\b", lambda m: str(INT_MAX[m.group(1)]), expr)
    expr = re.sub(r"(?:std::time::)?Duration::from_(secs|millis|micros)\b", r"_\1", expr)

    def constant(match):
        path = match.group(0).split("::")
        while path and path[0] in ("crate", "self", "super"):
            path = path[1:]
        hits = resolve(defs, tuple(path[:-1]), path[-1], definition.crate)
        if not hits:  # named through a re-export (`pub use`): the crate's one of that name
            hits = [d for d in defs if d.name == path[-1] and d.crate == definition.crate]
        local = [d for d in hits if d.path == definition.path]
        hits = local or hits
        if len(hits) != 1:
            raise NotSimple(f"`{match.group(0)}` is not one constant")
        value = evaluate(defs, hits[0], seen + (definition,))
        return f"_dur({value.nanos})" if isinstance(value, Dur) else f"({value})"

    expr = re.sub(r"\b(?:[A-Za-z_]\w*::)*[A-Z][A-Z0-9_]+\b", constant, expr)
    expr = re.sub(r"(?<=\d)_(?=\d)", "", expr)
    if not re.fullmatch(r"(?:[\d\s()+\-*/<>]|_secs|_millis|_micros|_dur)*", expr):
        raise NotSimple(f"`{definition.expr}` is not a literal expression")
    expr = expr.replace("/", "//")
    names = {
        "_secs": lambda n: Dur(n * 10**9),
        "_millis": lambda n: Dur(n * 10**6),
        "_micros": lambda n: Dur(n * 10**3),
        "_dur": Dur,
    }
    try:
        return eval(expr, {"__builtins__": {}}, names)  # only digits, operators and the names above
    except Exception as error:  # noqa: BLE001 (any failure means "not simple")
        raise NotSimple(f"`{definition.expr}` did not evaluate ({error})")


UNITS = {"ns": 1, "ms": 10**6, "s": 10**9, "min": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
SIZES = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "bytes": 1, "B": 1}
STATED = re.compile(r"\s*=\s*(\d[\d,_]*(?:\.\d+)?)(?:\s*(KiB|MiB|GiB|bytes|B|ms|s|min|h|d)\b)?")


def stated_value(text):
    match = STATED.match(text)
    if not match:
        return None
    number = float(match.group(1).replace(",", "").replace("_", ""))
    unit = match.group(2)
    if unit in UNITS:
        return Dur(round(number * UNITS[unit])), match.group(0).strip()[1:].strip()
    return round(number * SIZES.get(unit, 1)), match.group(0).strip()[1:].strip()


def comparable(definition, value, stated):
    """The code's value in the stated value's kind: `_SECS` integers are durations."""
    if isinstance(stated, Dur) and not isinstance(value, Dur):
        if definition.name.endswith("_SECS"):
            return Dur(value * 10**9)
        if definition.name.endswith("_MS"):
            return Dur(value * 10**6)
    return value


# ---------------------------------------------------------------- struct fields


def field_value(type_name, field):
    """(where, expr or None) of `Type::field`, or None when the struct has no such field."""
    for crate_dir in PRODUCT_CRATES:
        src = os.path.join(ROOT, crate_dir, "src")
        for directory, _, files in os.walk(src):
            for file in files:
                path = os.path.join(directory, file)
                if not file.endswith(".rs"):
                    continue
                with open(path) as source:
                    text = source.read()
                struct = re.search(r"^\s*pub(?:\([a-z]+\))? struct " + type_name + r"\b[^{;]*\{(.*?)^\}", text, flags=re.M | re.S)
                if not struct:
                    continue
                if not re.search(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?" + field + r"\s*:", struct.group(1), flags=re.M):
                    return None
                where = f"{os.path.relpath(path, ROOT)}:{text[: struct.start()].count(chr(10)) + 1}"
                default = re.search(r"const DEFAULT: " + type_name + r" = " + type_name + r" \{(.*?)\};", text, flags=re.S)
                if default:
                    value = re.search(r"^\s*" + field + r":\s*(.+?),\s*$", default.group(1), flags=re.M)
                    if value:
                        return where, value.group(1)
                return where, None
    return None


# ---------------------------------------------------------------- the table


CONSTANT = re.compile(r"^(?:[A-Za-z_]\w*::)*[A-Z][A-Z0-9_]+$")
FIELD = re.compile(r"^(?:[a-z_]\w*::)*([A-Z][A-Za-z0-9]*)::([a-z_][a-z0-9_]*)$")


def table_rows():
    with open(os.path.join(ROOT, TABLE)) as table:
        lines = table.read().split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith("|") or re.match(r"^\|[\s|:-]+\|$", line):
            continue
        if number < len(lines) and re.match(r"^\|[\s|:-]+\|$", lines[number]):
            continue  # a header row: the next line is the separator
        rows.append((number, line))
    return rows


def check_table(defs, problems):
    listed = set()
    for number, row in table_rows():
        where = f"{TABLE}:{number}"
        prefix, named = (), 0
        for match in re.finditer(r"`([^`]+)`", row):
            text, after = match.group(1), row[match.end():]
            if CONSTANT.match(text):
                path = tuple(text.split("::"))
                if len(path) > 1:
                    prefix = path[:-1]
                elif prefix:
                    path = prefix + path
                named += 1
                hits = resolve(defs, path[:-1], path[-1])
                if not hits:
                    elsewhere = [d.full() for d in defs if d.name == path[-1]]
                    hint = f" (it is defined as {', '.join(elsewhere)})" if elsewhere else ""
                    problems.append(f"{where}: `{text}` names no constant: no `const {path[-1]}` in a module ending in `{'::'.join(path[:-1]) or '(any)'}`{hint}")
                    continue
                listed.update(hits)
                stated = stated_value(after)
                if stated is None:
                    continue
                value_stated, written = stated
                if len(hits) > 1:
                    problems.append(f"{where}: `{text}` = {written}: the name is ambiguous ({', '.join(d.full() for d in hits)}); write more of its path")
                    continue
                try:
                    value = comparable(hits[0], evaluate(defs, hits[0]), value_stated)
                except NotSimple as why:
                    problems.append(f"{where}: `{text}` = {written}, but {hits[0].where()} cannot be checked: {why} (drop the `= {written}`)")
                    continue
                if value != value_stated:
                    spelled = "" if hits[0].expr.strip() == str(value) else f" (`{hits[0].expr}`)"
                    problems.append(f"{where}: `{text}` = {written}, but {hits[0].where()} says {show(value)}{spelled}")
            elif FIELD.match(text) and stated_value(after) is not None:
                type_name, field = FIELD.match(text).groups()
                named += 1
                stated = stated_value(after)
                found = field_value(type_name, field)
                if found is None:
                    problems.append(f"{where}: `{text}` names no field: no `struct {type_name}` with a field `{field}` in {', '.join(PRODUCT_CRATES)}")
                    continue
                field_where, expr = found
                if expr is None:
                    problems.append(f"{where}: `{text}` = {stated[1]}, but {field_where} has no `{type_name}::DEFAULT` giving it a value")
                    continue
                fake = Definition("", (), field.upper(), expr, field_where, 0)
                try:
                    value = evaluate(defs, fake)
                except NotSimple as why:
                    problems.append(f"{where}: `{text}` = {stated[1]} cannot be checked: {why}")
                    continue
                if value != stated[0]:
                    problems.append(f"{where}: `{text}` = {stated[1]}, but `{type_name}::DEFAULT` in {field_where} says {show(value)} (`{expr}`)")
        if named == 0:
            problems.append(f"{where}: the row names no constant: every bound has a name (write it in backticks, `module::NAME`)")
    return listed


def check_unlisted(defs, listed, problems):
    allowed = set()
    for key, reason in sorted(ALLOWED.items()):
        path = tuple(key.split("::"))
        hits = resolve(defs, path[:-1], path[-1])
        if not hits:
            problems.append(f"scripts/check-bounds.py: ALLOWED lists `{key}`, which is no longer defined: remove it")
        elif not reason.strip():
            problems.append(f"scripts/check-bounds.py: ALLOWED lists `{key}` without a reason")
        allowed.update(hits)
    product = {crate_name(c) for c in PRODUCT_CRATES}
    for definition in defs:
        if definition.crate not in product or not BOUND_NAME.search(definition.name):
            continue
        if definition in listed or definition in allowed:
            continue
        problems.append(
            f"{definition.where()}: `{definition.full()}` looks like a bound, but {TABLE} does not list it "
            "(add a row with its limit and what happens when it is reached, or add it to ALLOWED "
            "in scripts/check-bounds.py with the reason it is not a bound)"
        )


def main():
    defs = definitions()
    problems = []
    listed = check_table(defs, problems)
    check_unlisted(defs, listed, problems)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check-bounds: {len(problems)} problem(s); {TABLE} and the code disagree")
        return 1
    print(f"check-bounds: {len(table_rows())} rows of {TABLE} agree with the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
