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
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
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


def _interpolations(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level ``${...}`` in ``text``, braces balanced."""
    spans = []
    i = 0
    while (start := text.find("${", i)) != -1:
        depth, j = 0, start + 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        spans.append((start, j + 1))
        i = j + 1
    return spans


def _number(value: float) -> str:
    """A number as Terraform prints it in a string: 28, 0.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(text: str, config: Config, known: dict[str, str] | None = None) -> str:
    """``text`` with its interpolations evaluated from the variables' defaults.

    Enough of Terraform's expression language for the alert filters and
    queries: ``var.X``, ``local.X`` (with ``.key`` or ``["key"]`` indexing),
    a resource's ``.name`` (one of a for_each by ``["key"]``),
    ``replace(x, "a", "b")`` and arithmetic on numbers. ``known`` supplies
    values of other expressions verbatim (e.g. ``local.service_names["ingest"]``).
    Anything else raises, so a test never silently compares an unevaluated
    expression.
    """
    known = known or {}

    def value(expr: str) -> str:
        expr = expr.strip()
        if expr in known:
            return known[expr]
        if m := re.fullmatch(r'replace\((.+), "(.*)", "(.*)"\)', expr):
            return value(m.group(1)).replace(m.group(2), m.group(3))
        if m := re.fullmatch(r"var\.(\w+)", expr):
            default = config.default(m.group(1))
            return _number(default) if isinstance(default, (int, float)) else str(default)
        m = re.fullmatch(r'(\w+)\.(\w+)\["(\w+)"\]\.name', expr)
        if m and (m.group(1), m.group(2)) in config.resources:
            name = config.resource(m.group(1), m.group(2))["name"]
            return render(name.replace("${each.key}", m.group(3)), config, known)
        m = re.fullmatch(r"(\w+)\.(\w+)\.name", expr)
        if m and (m.group(1), m.group(2)) in config.resources:
            return render(config.resource(m.group(1), m.group(2))["name"], config, known)
        if m := re.fullmatch(r"local\.(\w+)((?:\.\w+|\[\"\w+\"\])*)", expr):
            current: Any = config.locals[m.group(1)]
            for key in re.findall(r"\.(\w+)|\[\"(\w+)\"\]", m.group(2)):
                current = current[key[0] or key[1]]
            if isinstance(current, (int, float)):
                return _number(current)
            return render(current, config, known)
        arithmetic = re.sub(r"(var|local)\.\w+", lambda r: value(r.group(0)), expr)
        if re.fullmatch(r"[\d.\s*/+()-]+", arithmetic):
            return _number(eval(arithmetic))  # digits and operators only
        raise ValueError(f"cannot evaluate ${{{expr}}}")

    out, last = [], 0
    for start, end in _interpolations(text):
        out.append(text[last:start])
        out.append(value(text[start + 2 : end - 1]))
        last = end
    out.append(text[last:])
    return "".join(out)
