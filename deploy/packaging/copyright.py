#!/usr/bin/env python3
"""Writes the Debian copyright file (machine-readable format 1.0) of the packages.

The binary links Rust crates statically, so the packages must name every crate built into
/usr/bin/studio-role-sync with its licence and copyright holders. The crate list is the
normal (not dev, not build) dependency graph of the studio-role-sync package for Linux, as
`cargo metadata` resolves it from Cargo.lock; proc-macro crates run only at build time and are
left out. Copyright holders come from the `Copyright ...` lines of each crate's licence files,
else from its `authors`. Licences found in /usr/share/common-licenses are referred to there
(as Debian policy asks); the text of every other licence is taken from a crate that ships it.
A licence with no text found fails the script: the file is never silently incomplete.

Usage: python3 deploy/packaging/copyright.py > copyright   (from the repository root)
"""
import json
import os
import re
import subprocess
import sys

ROOT_PACKAGE = "studio-role-sync"
COMMON = {  # SPDX id -> file under /usr/share/common-licenses (Debian)
    "Apache-2.0": "Apache-2.0",
    "CC0-1.0": "CC0-1.0",
    "MPL-2.0": "MPL-2.0",
}
# Licence files that hold a given licence, by the file name's tail (upper case).
FILE_HINTS = {
    "MIT": ["MIT"],
    "Apache-2.0": ["APACHE", "APACHE-2.0"],
    "BSD-2-Clause": ["BSD", "BSD-2-CLAUSE"],
    "BSD-3-Clause": ["BSD", "BSD-3-CLAUSE"],
    "BSL-1.0": ["BSL", "BOOST", "BSL-1.0"],
    "ISC": ["ISC"],
    "Zlib": ["ZLIB"],
    "Unicode-3.0": ["UNICODE"],
    "Unlicense": ["UNLICENSE"],
    "0BSD": ["0BSD"],
    "CDLA-Permissive-2.0": ["CDLA", "CDLA-PERMISSIVE-2.0"],
}
LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT|UNLICENSE|NOTICE)", re.I)
# Template lines of licence texts, not holders.
TEMPLATE = re.compile(r"\[yyyy\]|\{yyyy\}|<year>|\[name of copyright owner\]|copyright notice|"
                      r"copyright holders? (and|be)|copyright (owner|license)|the above copyright|"
                      r"and permission notice|copyright assignment|copyright notices?",
                      re.I)


def metadata():
    host = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    triple = re.search(r"^host: (\S+)", host, re.M).group(1)
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", triple],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def bundled(meta):
    """The packages compiled into the binary, root first."""
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p["id"] for p in meta["packages"]
                if p["name"] == ROOT_PACKAGE and p["source"] is None)
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        for dep in nodes[pid]["deps"]:
            normal = any(k["kind"] is None for k in dep["dep_kinds"])
            proc_macro = any("proc-macro" in t["kind"] for t in pkgs[dep["pkg"]]["targets"])
            if normal and not proc_macro:
                todo.append(dep["pkg"])
    first, rest = seen[0], sorted(seen[1:], key=lambda i: (pkgs[i]["name"], pkgs[i]["version"]))
    return [pkgs[first]] + [pkgs[i] for i in rest]


def license_ids(expr):
    expr = expr.replace("/", " OR ")  # old crates write "MIT/Apache-2.0"
    ids = re.findall(r"[A-Za-z0-9.\-+]+", expr)
    return [i for i in ids if i not in ("OR", "AND", "WITH", "LLVM-exception")]


def license_files(pkg):
    d = os.path.dirname(pkg["manifest_path"])
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    return [os.path.join(d, n) for n in names
            if LICENSE_FILE.match(n) and os.path.isfile(os.path.join(d, n))]


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def holders(pkg):
    found = []
    for path in license_files(pkg):
        for line in read(path).splitlines():
            line = line.strip().strip("*#/ ").strip()
            if re.match(r"^(copyright|©)\s", line, re.I) and not TEMPLATE.search(line) \
                    and 8 < len(line) < 200:
                line = re.sub(r"^copyright\s*(\(c\)|©)?\s*", "", line, flags=re.I).strip()
                if line and line not in found:
                    found.append(line)
    if not found:
        found = [a for a in pkg.get("authors") or []]
    if not found:
        where = pkg.get("repository") or pkg.get("homepage") or "crates.io"
        found = [f"the {pkg['name']} authors ({where})"]
    return found


def text_of(lid, pkgs):
    """Full text of licence `lid`, from the licence file of a crate that ships it."""
    hints = FILE_HINTS.get(lid, [lid.upper()])
    for pkg in pkgs:
        ids = license_ids(pkg.get("license") or "")
        if lid not in ids:
            continue
        for path in license_files(pkg):
            base = os.path.basename(path).upper()
            tail = re.sub(r"^(LICEN[CS]E|COPYING)[-_.]?", "", base)
            tail = re.sub(r"\.(TXT|MD)$", "", tail)
            single = len(ids) == 1 and tail in ("", "TXT", "MD")
            if tail in hints or single or (base == "UNLICENSE" and lid == "Unlicense"):
                body = [l.rstrip() for l in read(path).splitlines()
                        if not re.match(r"^\s*(copyright|\(c\))\s", l, re.I) or TEMPLATE.search(l)]
                while body and not body[0].strip():
                    body.pop(0)
                return "\n".join(body).strip("\n")
    return None


def field(text):
    """A multi-line DEP-5 field value: continuation lines start with a space, blank ones are ' .'."""
    text = re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text)
    return "\n".join(" " + l if l.strip() else " ." for l in text.splitlines())


def dep5(expr):
    """An SPDX expression in DEP-5 spelling: lower-case operators, single spaces."""
    expr = re.sub(r"\s+", " ", expr.replace("/", " OR ")).strip()
    return re.sub(r"\b(OR|AND|WITH)\b", lambda m: m.group(1).lower(), expr)


def main():
    meta = metadata()
    pkgs = bundled(meta)
    own = pkgs[0]
    out = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        f"Upstream-Name: {own['name']}",
        "Comment: /usr/bin/studio-role-sync is one statically linked Rust program. Besides its",
        " own code it contains the Rust crates listed below (\"vendor/NAME-VERSION\"), each",
        " under its own licence. Generated by deploy/packaging/copyright.py from Cargo.lock.",
        "",
        "Files: *",
        "Copyright: the studio-role-sync authors",
        f"License: {dep5(own['license'])}",
    ]
    used = set(license_ids(own["license"]))
    for pkg in pkgs[1:]:
        lic = pkg.get("license")
        if not lic:
            sys.exit(f"copyright.py: crate {pkg['name']} {pkg['version']} declares no licence")
        used.update(license_ids(lic))
        out += ["", f"Files: vendor/{pkg['name']}-{pkg['version']}/*",
                "Copyright: " + "\n ".join(holders(pkg)),
                "License: " + dep5(lic)]
    missing = []
    for lid in sorted(used):
        out += ["", f"License: {lid}"]
        if lid in COMMON:
            out.append(f" On Debian systems, the full text of the {lid} licence can be found in")
            out.append(f" /usr/share/common-licenses/{COMMON[lid]}.")
            continue
        text = text_of(lid, pkgs)
        if text is None:
            missing.append(lid)
        else:
            out.append(field(text))
    if missing:
        sys.exit("copyright.py: no licence text found for " + ", ".join(missing))
    print("\n".join(out))


if __name__ == "__main__":
    main()
