"""Load infra/*.tf with python-hcl2 into plain, comparable Python values.

python-hcl2 keeps HCL's quoting: a string literal comes back as '"text"', an
expression as '${...}', block labels as '"name"'. ``load()`` strips the quotes
of literals and labels and leaves expressions as '${...}' strings, so tests
compare against what a reader sees in the .tf file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from tests.support import REPO_ROOT

INFRA = REPO_ROOT / "infra"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            _unquote(k): _clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def comments(value: Any) -> list[str]:
    """Every comment python-hcl2 attached anywhere inside ``value``."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "__comments__":
                found.extend(c["value"] for c in v)
            else:
                found.extend(comments(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(comments(v))
    return found


@dataclass
class Config:
    files: dict[str, dict[str, Any]]
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    raw_resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        return self.resources[(rtype, name)]

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}

    def default(self, variable: str) -> Any:
        return self.variables[variable].get("default")


@cache
def load() -> Config:
    raw = {p.name: hcl2.load(p.open()) for p in sorted(INFRA.glob("*.tf"))}
    config = Config(files={name: _clean(tree) for name, tree in raw.items()})
    for tree in raw.values():
        for block in tree.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    key = (_unquote(rtype), _unquote(name))
                    assert key not in config.resources, f"duplicate resource {key}"
                    config.raw_resources[key] = body
                    config.resources[key] = _clean(body)
        for block in tree.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    config.data[(_unquote(dtype), _unquote(name))] = _clean(body)
        for block in tree.get("variable", []):
            for name, body in block.items():
                config.variables[_unquote(name)] = _clean(body)
        for block in tree.get("output", []):
            for name, body in block.items():
                config.outputs[_unquote(name)] = _clean(body)
        for block in tree.get("locals", []):
            for name, value in _clean(block).items():
                assert name not in config.locals, f"local {name} defined twice"
                config.locals[name] = value
    return config


def refs(expr: str, kind: str = "var") -> set[str]:
    """Names referenced as ``kind.NAME`` in an expression string."""
    return set(re.findall(rf"\b{kind}\.(\w+)", expr))


def source_text() -> str:
    return "\n".join(p.read_text() for p in sorted(INFRA.glob("*.tf")))


def path(name: str) -> Path:
    return INFRA / name
