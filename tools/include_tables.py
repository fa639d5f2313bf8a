"""Refreshes the generated tables inside a Markdown file: the text between
`<!-- begin FILE -->` and `<!-- end FILE -->` is replaced by FILE's contents (a path relative to
the Markdown file; scripts/zoo-report.sh writes them). Headings in FILE are demoted by `--demote`
levels so a fragment's `##` fits under the report's sections. Prose outside the markers stays.

    python3 tools/include_tables.py docs/results.md --demote 1
"""
import argparse
import os
import re

ap = argparse.ArgumentParser()
ap.add_argument("markdown")
ap.add_argument("--demote", type=int, default=0)
a = ap.parse_args()
base = os.path.dirname(a.markdown)
text = open(a.markdown).read()


def fill(m):
    name = m.group(1)
    body = open(os.path.join(base, name)).read().strip("\n")
    if a.demote:
        body = re.sub(r"^(#+) ", lambda h: "#" * (len(h.group(1)) + a.demote) + " ", body, flags=re.M)
    return f"<!-- begin {name} -->\n{body}\n<!-- end {name} -->"


new, n = re.subn(r"<!-- begin (\S+) -->.*?<!-- end \1 -->", fill, text, flags=re.S)
open(a.markdown, "w").write(new)
print(f"{a.markdown}: {n} tables refreshed")
