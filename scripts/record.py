#!/usr/bin/env python3
"""Puts what arrives on stdin between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
in each FILE, so that figures in the docs are generated, never typed:
    scripts/fuzz.sh 60 | scripts/record.py fuzz docs/RELIABILITY.md BENCHMARKS.md
A file without the markers gets them, with the text, at its end."""
import re
import sys

name, files = sys.argv[1], sys.argv[2:]
text = sys.stdin.read().rstrip()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
block = f"{begin}\n{text}\n{end}"
for path in files:
    doc = open(path).read()
    if begin in doc:
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    open(path, "w").write(doc)
