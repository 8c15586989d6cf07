#!/usr/bin/env python3
"""The import graph of src/'s top-level modules; exits 1 on a cycle.

An edge `a -> b` means a non-test file under module `a` names `crate::b` (in a `use` or a path,
or a name the crate root re-exports from `b`). `#[cfg(test)] mod tests` blocks, `tests.rs` files and
`#[doc(hidden)] pub use` lines (old paths kept working) are not counted. Usage: import_graph.py [crate-dir]"""
import os, re, sys

root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "src")
# `props` holds the property tests (`#[cfg(test)]`), not code.
tops = {n[:-3] if n.endswith(".rs") else n for n in os.listdir(root)} - {"lib", "props"}

def strip(text):
    text = re.sub(r"//[^\n]*", "", text)                  # comments and doc comments
    # An old path kept working (`#[doc(hidden)] pub use ...;`) is not a dependency.
    text = re.sub(r"#\[doc\(hidden\)\]\s*pub\s+use\s+[^;]*;", "", text)
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests\s*[;{]", text)
    return text[: cut.start()] if cut else text

def crate_paths(text):
    """Top-level names after `crate::`, braces expanded one level."""
    out = set()
    for m in re.finditer(r"crate::", text):
        i = m.end()
        if text.startswith("{", i):
            depth, j, start = 0, i, i + 1
            names = []
            while j < len(text):
                c = text[j]
                if c == "{": depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0: names.append(text[start:j]); break
                elif c == "," and depth == 1: names.append(text[start:j]); start = j + 1
                j += 1
            for n in names:
                n = n.strip()
                mm = re.match(r"[A-Za-z_][A-Za-z0-9_]*", n)
                if mm: out.add(mm.group(0))
        else:
            mm = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i:])
            if mm: out.add(mm.group(0))
    return out

# Names the crate root re-exports (`pub use module::{A, B}` in lib.rs) count as their module.
reexport = {}
lib = re.sub(r"//[^\n]*", "", open(os.path.join(root, "lib.rs")).read())
for m in re.finditer(r"pub\s+use\s+([a-z_]+)::(\{[^}]*\}|[A-Za-z_0-9]+)", lib):
    for n in m.group(2).strip("{}").split(","):
        n = n.strip().split(" as ")[-1].strip()
        if n: reexport[n] = m.group(1)

edges = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs") or f == "tests.rs": continue
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top in ("lib", "props"): continue
        names = crate_paths(strip(open(os.path.join(dirpath, f)).read()))
        names = {reexport.get(n, n) for n in names}
        for n in names & tops:
            if n != top: edges.setdefault(top, set()).add(n)

for a in sorted(edges):
    print(f"{a} -> {', '.join(sorted(edges[a]))}")
# cycles: DFS
state, stack, cycles = {}, [], []
def dfs(u):
    state[u] = 1; stack.append(u)
    for v in sorted(edges.get(u, ())):
        if state.get(v) == 1: cycles.append(stack[stack.index(v):] + [v])
        elif v not in state: dfs(v)
    stack.pop(); state[u] = 2
for u in sorted(tops): 
    if u not in state: dfs(u)
for c in cycles: print("cycle:", " -> ".join(c))
sys.exit(1 if cycles else 0)
