"""Render nbs/index.ipynb to README.md (nbdev_readme needs quarto, which this project does not install).

Markdown cells are copied; code cells flagged `#| hide` are dropped, others are shown as Python blocks.
`python tools/readme.py --check` fails if README.md is stale.
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]

def render(nb_path=root / "nbs" / "index.ipynb") -> str:
    out = []
    for c in json.loads(nb_path.read_text())["cells"]:
        src = "".join(c["source"]).strip()
        if c["cell_type"] == "markdown": out.append(src)
        elif src and not any(l.strip() in ("#| hide", "#|hide") for l in src.splitlines()):
            out.append("```python\n" + src + "\n```")
    text = "\n\n".join(out) + "\n"
    return "<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->\n\n" + text

if __name__ == "__main__":
    text, readme = render(), root / "README.md"
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit("README.md is stale: run `python tools/readme.py`")
    else: readme.write_text(text)
