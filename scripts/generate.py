"""Generated files kept in sync with their sources.

* functions/requirements.txt from pyproject.toml's runtime dependencies
  (Cloud Functions builds from requirements.txt).
* functions/rbm_analytics/core/schemas/ from infra/schemas/ (the BigQuery table
  schemas: infra/ reads them for Terraform; the deployed functions/ folder
  cannot reach infra/, so it carries a copy).

``--check`` exits 1 when a checked-in copy is out of date.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "functions" / "requirements.txt"
SCHEMA_SOURCE = ROOT / "infra" / "schemas"
SCHEMA_COPY = ROOT / "functions" / "rbm_analytics" / "core" / "schemas"
HEADER = "# Generated from pyproject.toml by scripts/generate.py; do not edit.\n"


def outputs() -> dict[Path, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {REQUIREMENTS: HEADER + "".join(f"{d}\n" for d in sorted(deps, key=str.lower))}
    for src in sorted(SCHEMA_SOURCE.glob("*.json")):
        out[SCHEMA_COPY / src.name] = src.read_text()
    return out


def main() -> int:
    expected = outputs()
    stale_copies = set(SCHEMA_COPY.glob("*.json")) - set(expected)
    if "--check" in sys.argv:
        stale = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
        stale += sorted(stale_copies)
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run 'make generate'")
        if not stale:
            print("generated files are in sync")
        return 1 if stale else 0
    SCHEMA_COPY.mkdir(parents=True, exist_ok=True)
    for path in stale_copies:
        path.unlink()
    for path, text in expected.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
