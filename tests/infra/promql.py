"""Evaluate the alert queries' PromQL subset over given per-agent numbers.

No Prometheus engine runs here, so the business alerts' queries are
evaluated by this small interpreter of the constructs they use, with
Prometheus' semantics: ``sum by (label) (increase(metric{...}[range] offset
o))`` looks its per-agent values up in the data a test supplies; arithmetic
between vectors matches on the grouping label (a missing side drops the
sample); a comparison keeps the left-hand samples for which it holds;
``and`` keeps left samples that have a right-hand match, ``unless`` those
that have none. Precedence: ``* /`` over comparisons over ``and unless``.
Anything outside the subset raises, so a query cannot pass by being skipped.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Vector = dict[str, float]
Value = float | Vector
# (metric name, label matchers, range, offset) -> {agent_id: increase}
Data = Mapping[tuple[str, frozenset[tuple[str, str]], str, str], Vector]

TOKEN = re.compile(
    r"\s*(?:(?P<dur>\d+[smhdwy](?![\w:]))|(?P<num>\d+(?:\.\d+)?(?![\w:]))|(?P<word>[A-Za-z_:][\w:]*)"
    r"|(?P<sel>\{[^}]*\})|(?P<range>\[[^\]]*\])|(?P<op>>=|<=|==|!=|[()<>*/+-]))"
)


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    data: Data
    pos: int = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, kind: str, text: str | None = None) -> str:
        k, t = self.peek()
        if k != kind or (text is not None and t != text):
            raise ValueError(f"expected {text or kind} at token {self.pos}, got {t!r}")
        self.pos += 1
        return t

    def expr(self) -> Value:
        left = self.comparison()
        while self.peek() in (("word", "and"), ("word", "unless")):
            op = self.take("word")
            right = self.comparison()
            assert isinstance(left, dict) and isinstance(right, dict), "set operators need vectors"
            left = {k: v for k, v in left.items() if (k in right) == (op == "and")}
        return left

    def comparison(self) -> Value:
        left = self.product()
        ops: dict[str, Callable[[float, float], bool]] = {
            "<": operator.lt, ">": operator.gt, ">=": operator.ge, "<=": operator.le,
        }  # fmt: skip
        while self.peek()[0] == "op" and self.peek()[1] in ops:
            compare = ops[self.take("op")]
            right = self.product()
            assert isinstance(left, dict), "a comparison filters a vector"
            left = {
                k: v
                for k, v in left.items()
                if (r := right.get(k) if isinstance(right, dict) else right) is not None
                and compare(v, r)
            }
        return left

    def product(self) -> Value:
        left = self.atom()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take("op")
            right = self.atom()
            left = _arith(op, left, right)
        return left

    def atom(self) -> Value:
        kind, text = self.peek()
        if kind == "num":
            self.pos += 1
            return float(text)
        if (kind, text) == ("op", "("):
            self.pos += 1
            value = self.expr()
            self.take("op", ")")
            return value
        if (kind, text) == ("word", "sum"):
            self.pos += 1
            self.take("word", "by")
            self.take("op", "(")
            label = self.take("word")
            assert label == "agent_id", label
            self.take("op", ")")
            self.take("op", "(")
            value = self.expr()
            self.take("op", ")")
            return value
        if (kind, text) == ("word", "increase"):
            self.pos += 1
            self.take("op", "(")
            metric = self.take("word")
            # A bare metric name selects every series of it.
            selector = self.take("sel") if self.peek()[0] == "sel" else ""
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', selector))
            window = self.take("range")[1:-1]
            offset = "0"
            if self.peek() == ("word", "offset"):
                self.pos += 1
                offset = self.take("dur")
            self.take("op", ")")
            return dict(self.data.get((metric, labels, window, offset), {}))
        raise ValueError(f"unsupported token {text!r}")


def _arith(op: str, left: Value, right: Value) -> Value:
    def f(a: float, b: float) -> float:
        if op == "*":
            return a * b
        if b == 0:
            return math.nan if a == 0 else math.copysign(math.inf, a)
        return a / b

    if isinstance(left, dict) and isinstance(right, dict):
        return {k: f(v, right[k]) for k, v in left.items() if k in right}
    if isinstance(left, dict):
        assert not isinstance(right, dict)
        return {k: f(v, right) for k, v in left.items()}
    if isinstance(right, dict):
        return {k: f(left, v) for k, v in right.items()}
    return f(left, right)


def evaluate(query: str, data: Data) -> Vector:
    """The agents (and values) for which ``query`` returns a sample: the alert fires for them."""
    tokens = []
    for m in TOKEN.finditer(query):
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
    rest = TOKEN.sub("", query).strip()
    if rest:
        raise ValueError(f"unparsed text: {rest!r}")
    parser = _Parser(tokens, data)
    result = parser.expr()
    if parser.pos != len(tokens):
        raise ValueError(f"trailing tokens from {parser.pos}: {tokens[parser.pos :]}")
    assert isinstance(result, dict), "an alert query must return a vector"
    return result
