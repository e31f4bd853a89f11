#!/usr/bin/env python3
"""The shape of the code, checked: what `scripts/test.sh` runs after clippy.

1. No import circle between the files of a crate. A file depends on another when its
   code names an item of the other's module through `crate::`, `super::` or `self::`
   paths (`use` lines, grouped imports and paths inside the code alike). Not counted:
   comments (doc links), `pub use` re-exports (a facade is not a dependency of the
   file's own code), and test code (files named `tests.rs` or under `tests/`, and
   `#[cfg(test)] mod tests { ... }` blocks at the end of a file).
2. No file over MAX_FILE_LINES lines, and no function over MAX_FN_LINES lines, outside
   tests.

Prints every violation (each circle as the files in it) and exits 1 when there is one
that `scripts/structure-debt.txt` does not list, or when that file lists one that is gone
(so the list only shrinks: delete the line with the fix). Lines there are the problems'
first words up to the first ":" after the path (a file, `file:fn name`, or `circle:` and
the files), one per line; `#` starts a comment.
Run from anywhere: `python3 scripts/check-structure.py`.
"""

import os
import re
import sys

MAX_FILE_LINES = 600
MAX_FN_LINES = 80
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def crates():
    """(name, src dir) of every workspace crate with Rust sources."""
    found = []
    for top in sorted(os.listdir(ROOT)):
        for sub in ["", "sync"]:
            manifest = os.path.join(ROOT, top, sub, "Cargo.toml")
            src = os.path.join(ROOT, top, sub, "src")
            if top in ("target", "fuzz", "plugins") or not os.path.isfile(manifest):
                continue
            if os.path.isdir(src):
                found.append((os.path.join(top, sub).rstrip("/"), src))
    return found


def is_test_file(path):
    parts = path.split(os.sep)
    return parts[-1] == "tests.rs" or "tests" in parts[:-1]


def module_of(src, path):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    """Drops a trailing `#[cfg(test)] mod tests { ... }` block."""
    match = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests \{", text, flags=re.M)
    return text[: match.start()] if match else text


def code_lines(text):
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        if re.match(r"pub(\([a-z]+\))?\s+use\b", stripped):
            continue
        lines.append(line)
    return "\n".join(lines)


def expand_groups(text):
    """`super::{a::B, c}` → `super::a::B super::c` (one level of braces)."""

    def expand(match):
        head, body = match.group(1), match.group(2)
        items = [item.strip() for item in body.split(",") if item.strip()]
        return " ".join(head + "::" + item for item in items)

    return re.sub(r"\b((?:crate|super|self)(?:::\w+)*)::\{([^{}]*)\}", expand, text)


def dependencies(module, text, modules):
    deps = set()
    for match in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", text):
        base, path = match.group(1), match.group(2).split("::")[1:]
        if base == "crate":
            current = []
        elif base == "self":
            current = list(module)
        else:
            current = list(module[:-1])
            while path and path[0] == "super":
                path, current = path[1:], current[:-1]
        full = current + path
        for keep in range(len(full), 0, -1):
            target = tuple(full[:keep])
            if target in modules:
                if target != module:
                    deps.add(target)
                break
    return deps


def circles(graph):
    """Strongly connected groups of more than one file (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def long_functions(path, text):
    """(name, first line, length) of every `fn` whose body spans over MAX_FN_LINES lines."""
    found = []
    lines = text.split("\n")
    for number, line in enumerate(lines):
        match = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", line)
        if not match:
            continue
        depth, started = 0, False
        for end in range(number, len(lines)):
            text_line = re.sub(r'"(\\.|[^"\\])*"', '""', lines[end])
            text_line = re.sub(r"'(\\.|[^'\\])'", "''", text_line)
            text_line = text_line.split("//")[0]
            if not started and ";" in text_line and "{" not in text_line:
                break
            depth += text_line.count("{") - text_line.count("}")
            if "{" in text_line:
                started = True
            if started and depth <= 0:
                length = end - number + 1
                if length > MAX_FN_LINES:
                    found.append((match.group(6), number + 1, length))
                break
    return found


DEBT_FILE = os.path.join(ROOT, "scripts", "structure-debt.txt")


def debt_key(problem):
    """The stable part of a problem: which file, function or circle, not its size."""
    if problem.startswith("import circle in "):
        return "circle: " + problem.split(": ", 1)[1]
    match = re.match(r"(\S+?):\d+: fn (\w+) is", problem)
    if match:
        return f"{match.group(1)}:fn {match.group(2)}"
    return problem.split(":", 1)[0]


def known_debt():
    if not os.path.isfile(DEBT_FILE):
        return set()
    lines = open(DEBT_FILE, encoding="utf-8").read().split("\n")
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def main():
    problems = []
    for crate, src in crates():
        files = {}
        for folder, _, names in os.walk(src):
            for name in names:
                if name.endswith(".rs"):
                    path = os.path.join(folder, name)
                    files[module_of(src, path)] = path
        graph = {}
        for module, path in files.items():
            text = open(path, encoding="utf-8").read()
            relative = os.path.relpath(path, ROOT)
            if is_test_file(relative):
                continue
            text = strip_tests(text)
            if text.count("\n") > MAX_FILE_LINES:
                problems.append(f"{relative}: {text.count(chr(10))} lines (at most {MAX_FILE_LINES} outside tests)")
            for name, line, length in long_functions(relative, text):
                problems.append(f"{relative}:{line}: fn {name} is {length} lines (at most {MAX_FN_LINES})")
            modules = {m for m, p in files.items() if not is_test_file(os.path.relpath(p, ROOT))}
            graph[module] = dependencies(module, expand_groups(code_lines(text)), modules)
        for group in circles(graph):
            names = " <-> ".join(os.path.relpath(files[m], ROOT) for m in group)
            problems.append(f"import circle in {crate}: {names}")
    debt = known_debt()
    new = [p for p in problems if debt_key(p) not in debt]
    paid = sorted(debt - {debt_key(p) for p in problems})
    for problem in problems:
        print(("      " if debt_key(problem) in debt else "NEW   ") + problem)
    for key in paid:
        print(f"PAID  {key} (delete its line from scripts/structure-debt.txt)")
    print(f"check-structure: {len(problems)} problem(s), {len(new)} new, {len(paid)} paid off")
    return 1 if new or paid else 0


if __name__ == "__main__":
    sys.exit(main())
