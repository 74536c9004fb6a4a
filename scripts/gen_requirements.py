"""Write functions/requirements.txt from pyproject.toml's runtime dependencies.

Cloud Functions builds from requirements.txt; pyproject.toml is the source of
truth. ``--check`` exits 1 when the checked-in file is out of date.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "functions" / "requirements.txt"
HEADER = "# Generated from pyproject.toml by scripts/gen_requirements.py; do not edit.\n"


def render() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return HEADER + "".join(f"{d}\n" for d in sorted(deps, key=str.lower))


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run 'make requirements'")
            return 1
        print(f"{TARGET.relative_to(ROOT)} is in sync with pyproject.toml")
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
