"""The Grafana dashboards of observability/dashboards: the committed JSON is what the
generator writes, it passes the rules of Grafana's dashboard-linter (ported below, with a
PromQL parser of its own) and the platform's own rules, and every query reads only
catalogued metrics. Pure: no server; `promtool` (Debian's prometheus package) parses the
queries too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from observability import dashboards as generator

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "observability" / "dashboards"
NAMES = list(generator.DASHBOARDS)

Json = dict[str, Any]


def load(name: str) -> Json:
    loaded: Json = json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


# --- PromQL ----------------------------------------------------------------------------
# A parser for the PromQL Prometheus 2.x accepts, with its type checks, producing the
# nodes the linter's rules walk (prometheus/promql/parser: VectorSelector, MatrixSelector,
# Call, AggregateExpr, BinaryExpr, ...). promtool parses the same queries in
# test_promtool_parses_every_query.


class PromQLError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    kind: str  # ident, number, duration, string, op, eof
    text: str
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
    |(?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
    |(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<ident>[a-zA-Z_:][\w:]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
    |(?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=(){}\[\],:@])
    """,
    re.VERBOSE,
)


def tokenize(source: str) -> list[Token]:
    tokens = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise PromQLError(f"unexpected character {source[pos]!r} at {pos}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "", pos))
    return tokens


_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_UNITS |= {"w": 7 * 86_400_000, "y": 365 * 86_400_000}


def duration_ms(text: str) -> int:
    """A Prometheus duration (`1h30m`, `8869990787ms`) in milliseconds."""
    total = 0
    for amount, unit in re.findall(r"(\d+)(ms|[smhdwy])", text):
        total += int(amount) * _DURATION_UNITS[unit]
    return total


@dataclass
class Node:
    def children(self) -> list[Node]:
        return []


@dataclass
class NumberLiteral(Node):
    value: float


@dataclass
class StringLiteral(Node):
    value: str


@dataclass
class Matcher:
    name: str
    op: str  # =, !=, =~, !~
    value: str

    def matches(self, value: str) -> bool:
        if self.op in ("=", "!="):
            return (value == self.value) == (self.op == "=")
        return (re.fullmatch(self.value, value) is not None) == (self.op == "=~")


@dataclass
class VectorSelector(Node):
    name: str
    matchers: list[Matcher]


@dataclass
class MatrixSelector(Node):
    vector: VectorSelector
    range_ms: int

    def children(self) -> list[Node]:
        return [self.vector]


@dataclass
class SubqueryExpr(Node):
    expr: Node
    range_ms: int

    def children(self) -> list[Node]:
        return [self.expr]


@dataclass
class ParenExpr(Node):
    expr: Node

    def children(self) -> list[Node]:
        return [self.expr]


@dataclass
class UnaryExpr(Node):
    op: str
    expr: Node

    def children(self) -> list[Node]:
        return [self.expr]


@dataclass
class Call(Node):
    func: str
    args: list[Node]

    def children(self) -> list[Node]:
        return list(self.args)


@dataclass
class AggregateExpr(Node):
    op: str
    expr: Node
    param: Node | None
    grouping: list[str]
    without: bool

    def children(self) -> list[Node]:
        return [self.expr] if self.param is None else [self.expr, self.param]


@dataclass
class BinaryExpr(Node):
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool = False
    on: list[str] | None = None  # the labels of on(...), or of ignoring(...) with `ignoring`
    ignoring: bool = False
    group: str | None = None  # group_left or group_right

    def children(self) -> list[Node]:
        return [self.lhs, self.rhs]


# Argument types: s scalar, v instant vector, m range vector, t string; the count of
# trailing optional arguments (-1: any number); the return type.
FUNCTIONS: dict[str, tuple[str, int, str]] = {
    "abs": ("v", 0, "v"),
    "absent": ("v", 0, "v"),
    "absent_over_time": ("m", 0, "v"),
    "ceil": ("v", 0, "v"),
    "changes": ("m", 0, "v"),
    "clamp": ("vss", 0, "v"),
    "clamp_max": ("vs", 0, "v"),
    "clamp_min": ("vs", 0, "v"),
    "day_of_month": ("v", 1, "v"),
    "day_of_week": ("v", 1, "v"),
    "day_of_year": ("v", 1, "v"),
    "days_in_month": ("v", 1, "v"),
    "delta": ("m", 0, "v"),
    "deriv": ("m", 0, "v"),
    "exp": ("v", 0, "v"),
    "floor": ("v", 0, "v"),
    "histogram_count": ("v", 0, "v"),
    "histogram_sum": ("v", 0, "v"),
    "histogram_fraction": ("ssv", 0, "v"),
    "histogram_quantile": ("sv", 0, "v"),
    "holt_winters": ("mss", 0, "v"),
    "hour": ("v", 1, "v"),
    "idelta": ("m", 0, "v"),
    "increase": ("m", 0, "v"),
    "irate": ("m", 0, "v"),
    "label_join": ("vttt", -1, "v"),
    "label_replace": ("vtttt", 0, "v"),
    "last_over_time": ("m", 0, "v"),
    "ln": ("v", 0, "v"),
    "log10": ("v", 0, "v"),
    "log2": ("v", 0, "v"),
    "minute": ("v", 1, "v"),
    "month": ("v", 1, "v"),
    "pi": ("", 0, "s"),
    "predict_linear": ("ms", 0, "v"),
    "present_over_time": ("m", 0, "v"),
    "rate": ("m", 0, "v"),
    "resets": ("m", 0, "v"),
    "round": ("vs", 1, "v"),
    "scalar": ("v", 0, "s"),
    "sgn": ("v", 0, "v"),
    "sort": ("v", 0, "v"),
    "sort_desc": ("v", 0, "v"),
    "sqrt": ("v", 0, "v"),
    "time": ("", 0, "s"),
    "timestamp": ("v", 0, "v"),
    "vector": ("s", 0, "v"),
    "year": ("v", 1, "v"),
    **{f"{f}_over_time": ("m", 0, "v") for f in ("avg", "min", "max", "sum", "count")},
    **{f"{f}_over_time": ("m", 0, "v") for f in ("stddev", "stdvar")},
    "quantile_over_time": ("sm", 0, "v"),
    **dict.fromkeys(("acos", "acosh", "asin", "asinh", "atan", "atanh"), ("v", 0, "v")),
    **dict.fromkeys(("cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad"), ("v", 0, "v")),
}
AGGREGATIONS = {"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar"}
AGGREGATIONS_WITH_PARAM = {"topk": "s", "bottomk": "s", "quantile": "s", "count_values": "t"}
TYPE_NAMES = {"s": "scalar", "v": "instant vector", "m": "range vector", "t": "string"}
# Binary operators by precedence, loosest first; `^` is right-associative.
PRECEDENCE = [
    {"or"},
    {"and", "unless"},
    {"==", "!=", "<=", "<", ">=", ">"},
    {"+", "-"},
    {"*", "/", "%", "atan2"},
    {"^"},
]
COMPARISONS = PRECEDENCE[2]
SET_OPERATORS = PRECEDENCE[0] | PRECEDENCE[1]
LABEL_NAME = re.compile(r"[a-zA-Z_]\w*")


def type_of(node: Node) -> str:
    if isinstance(node, NumberLiteral):
        return "s"
    if isinstance(node, StringLiteral):
        return "t"
    if isinstance(node, VectorSelector | AggregateExpr):
        return "v"
    if isinstance(node, MatrixSelector | SubqueryExpr):
        return "m"
    if isinstance(node, ParenExpr | UnaryExpr):
        return type_of(node.expr)
    if isinstance(node, Call):
        return FUNCTIONS[node.func][2]
    if isinstance(node, BinaryExpr):
        return "v" if "v" in (type_of(node.lhs), type_of(node.rhs)) else "s"
    raise AssertionError(node)


def _unquote(text: str) -> str:
    if text[0] == "`":
        return text[1:-1]
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


class Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.token
        if token.kind == "eof":
            raise self.fail("unexpected end of input")
        self.index += 1
        return token

    def fail(self, message: str) -> PromQLError:
        return PromQLError(f"{message} at position {self.token.pos} ({self.token.text!r})")

    def expect(self, text: str) -> Token:
        if self.token.text != text or self.token.kind not in ("op", "ident"):
            raise self.fail(f"expected {text!r}")
        return self.advance()

    def parse(self) -> Node:
        if self.token.kind == "eof":
            raise self.fail("no expression found in input")
        node = self.binary(0)
        if self.token.kind != "eof":
            raise self.fail("unexpected token")
        return node

    def binary_operator(self, level: int) -> str | None:
        """The binary operator at this level of precedence, if the token is one; keywords
        (and, or, unless, atan2) in any case, as Prometheus' lexer reads them."""
        token = self.token
        if token.kind in ("op", "ident") and token.text.lower() in PRECEDENCE[level]:
            return token.text.lower()
        return None

    def binary(self, level: int) -> Node:
        if level == len(PRECEDENCE):
            return self.unary()
        lhs = self.binary(level + 1)
        while (op := self.binary_operator(level)) is not None:
            self.advance()
            node = BinaryExpr(op, lhs, NumberLiteral(0))
            self.modifiers(node)
            # `^` is right-associative: its right side may hold another `^`.
            node.rhs = self.binary(level if op == "^" else level + 1)
            self.check_binary(node)
            lhs = node
            if op == "^":
                break
        return lhs

    def modifiers(self, node: BinaryExpr) -> None:
        if self.token.text == "bool":
            self.advance()
            node.return_bool = True
        if self.token.text in ("on", "ignoring"):
            node.ignoring = self.advance().text == "ignoring"
            node.on = self.labels()
            if self.token.text in ("group_left", "group_right"):
                node.group = self.advance().text
                if self.token.text == "(":
                    self.labels()

    def labels(self) -> list[str]:
        self.expect("(")
        names = []
        while self.token.text != ")":
            if self.token.kind != "ident" or not LABEL_NAME.fullmatch(self.token.text):
                raise self.fail("unexpected label name")
            names.append(self.advance().text)
            if self.token.text == ",":
                self.advance()
            elif self.token.text != ")":
                raise self.fail("expected ',' or ')' in grouping")
        self.advance()
        return names

    def check_binary(self, node: BinaryExpr) -> None:
        lhs, rhs = type_of(node.lhs), type_of(node.rhs)
        if lhs not in "sv" or rhs not in "sv":
            raise self.fail("binary expression must contain only scalar and instant vector types")
        if node.return_bool and node.op not in COMPARISONS:
            raise self.fail("bool modifier can only be used on comparison operators")
        if node.op in COMPARISONS and lhs == rhs == "s" and not node.return_bool:
            raise self.fail("comparisons between scalars must use BOOL modifier")
        if node.op in SET_OPERATORS and (lhs == "s" or rhs == "s"):
            raise self.fail(f'set operator "{node.op}" not allowed in binary scalar expression')
        if (node.on is not None or node.group) and (lhs == "s" or rhs == "s"):
            raise self.fail("vector matching only allowed between instant vectors")
        if node.group and node.op in SET_OPERATORS:
            raise self.fail(f'no grouping allowed for "{node.op}" operation')

    def unary(self) -> Node:
        if self.token.text in ("+", "-") and self.token.kind == "op":
            op = self.advance().text
            operand = self.unary()
            if type_of(operand) not in "sv":
                raise self.fail(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                )
            if isinstance(operand, NumberLiteral):
                return NumberLiteral(-operand.value if op == "-" else operand.value)
            return UnaryExpr(op, operand)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.token.text == "[":
                self.advance()
                if self.token.kind != "duration":
                    raise self.fail("expected a duration in a range")
                range_ms = duration_ms(self.advance().text)
                if self.token.text == ":":
                    self.advance()
                    if self.token.kind == "duration":
                        self.advance()
                    self.expect("]")
                    if type_of(node) != "v":
                        raise self.fail("subquery is only allowed on instant vector")
                    node = SubqueryExpr(node, range_ms)
                    continue
                self.expect("]")
                if not isinstance(node, VectorSelector):
                    raise self.fail("ranges only allowed for vector selectors")
                node = MatrixSelector(node, range_ms)
            elif self.token.text == "offset":
                self.advance()
                if self.token.text == "-":
                    self.advance()
                if self.token.kind != "duration":
                    raise self.fail("expected a duration after offset")
                self.advance()
                self.check_modifiable(node, "offset")
            elif self.token.text == "@":
                self.advance()
                if self.token.text in ("start", "end"):
                    self.advance()
                    self.expect("(")
                    self.expect(")")
                elif self.token.kind == "number":
                    self.advance()
                else:
                    raise self.fail("expected a timestamp after @")
                self.check_modifiable(node, "@")
            else:
                return node

    def check_modifiable(self, node: Node, modifier: str) -> None:
        if not isinstance(node, VectorSelector | MatrixSelector | SubqueryExpr):
            raise self.fail(f"{modifier} modifier must be preceded by an instant vector selector")

    def primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            return NumberLiteral(
                float(int(token.text, 16)) if "x" in token.text.lower() else float(token.text)
            )
        if token.kind == "string":
            self.advance()
            return StringLiteral(_unquote(token.text))
        if token.text == "(":
            self.advance()
            inner = self.binary(0)
            self.expect(")")
            return ParenExpr(inner)
        if token.text == "{":
            return self.selector("")
        if token.kind == "ident":
            name = token.text
            if name.lower() in ("inf", "nan"):
                self.advance()
                return NumberLiteral(float(name))
            following = self.peek().text
            if name in AGGREGATIONS | AGGREGATIONS_WITH_PARAM.keys() and following in (
                "(",
                "by",
                "without",
            ):
                return self.aggregation()
            if following == "(":
                return self.call()
            self.advance()
            return self.selector(name)
        raise self.fail("unexpected token")

    def selector(self, name: str) -> VectorSelector:
        matchers = []
        if self.token.text == "{":
            self.advance()
            while self.token.text != "}":
                label = self.advance()
                if label.kind != "ident" or not LABEL_NAME.fullmatch(label.text):
                    raise self.fail("unexpected label name in a label matcher")
                if self.token.text not in ("=", "!=", "=~", "!~"):
                    raise self.fail("expected a label matching operator")
                op = self.advance().text
                if self.token.kind != "string":
                    raise self.fail("expected a string in a label matcher")
                value = _unquote(self.advance().text)
                if op in ("=~", "!~"):
                    try:
                        re.compile(value)
                    except re.error as exc:
                        raise self.fail(f"invalid regular expression {value!r}: {exc}") from exc
                if label.text == "__name__":
                    if name:
                        raise self.fail("metric name must not be set twice")
                    if op == "=":
                        name = value
                        continue
                matchers.append(Matcher(label.text, op, value))
                if self.token.text == ",":
                    self.advance()
                elif self.token.text != "}":
                    raise self.fail("expected ',' or '}' in label matching")
            self.advance()
        if not name and all(matcher.matches("") for matcher in matchers):
            raise self.fail("vector selector must contain at least one non-empty matcher")
        return VectorSelector(name, matchers)

    def aggregation(self) -> AggregateExpr:
        op = self.advance().text
        grouping: list[str] = []
        without = False
        if self.token.text in ("by", "without"):
            without = self.advance().text == "without"
            grouping = self.labels()
        self.expect("(")
        param = None
        if op in AGGREGATIONS_WITH_PARAM:
            param = self.binary(0)
            self.expect(",")
            if type_of(param) != AGGREGATIONS_WITH_PARAM[op]:
                want = TYPE_NAMES[AGGREGATIONS_WITH_PARAM[op]]
                raise self.fail(f"expected type {want} in aggregation parameter")
        expr = self.binary(0)
        self.expect(")")
        if self.token.text in ("by", "without"):
            if grouping:
                raise self.fail("grouping given twice")
            without = self.advance().text == "without"
            grouping = self.labels()
        if type_of(expr) != "v":
            raise self.fail(f'expected type instant vector in aggregation expression "{op}"')
        return AggregateExpr(op, expr, param, grouping, without)

    def call(self) -> Call:
        name = self.advance().text
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function with name {name!r}")
        self.expect("(")
        args: list[Node] = []
        while self.token.text != ")":
            args.append(self.binary(0))
            if self.token.text == ",":
                self.advance()
            elif self.token.text != ")":
                raise self.fail("expected ',' or ')' in a call")
        self.advance()
        types, optional, _ = FUNCTIONS[name]
        if not (len(types) <= len(args) and (optional < 0 or len(args) <= len(types) + optional)):
            raise self.fail(
                f'expected {len(types)} argument(s) in call to "{name}", got {len(args)}'
            )
        for index, arg in enumerate(args):
            want = types[min(index, len(types) - 1)] if types else "v"
            if type_of(arg) != want:
                raise self.fail(
                    f'expected type {TYPE_NAMES[want]} in call to function "{name}", '
                    f"got {TYPE_NAMES[type_of(arg)]}"
                )
        return Call(name, args)


def parse_promql(source: str) -> Node:
    return Parser(source).parse()


def walk(node: Node, path: tuple[Node, ...] = ()) -> Iterator[tuple[Node, tuple[Node, ...]]]:
    """Every node with its ancestors, outermost first, as parser.Walk visits them."""
    yield node, path
    for child in node.children():
        yield from walk(child, (*path, node))


def selectors(node: Node) -> list[VectorSelector]:
    return [n for n, _ in walk(node) if isinstance(n, VectorSelector)]


# --- Grafana's variables -----------------------------------------------------------------
# lint/variables.go: a query's variables are replaced by sample values (outside double
# quotes only) so that it parses; $__rate_interval by a magic duration the rate rule
# recognises.

GLOBAL_VARIABLES: dict[str, object] = {
    "__rate_interval": "8869990787ms",
    "__interval": "4867856611ms",
    "__interval_ms": "7781188786",
    "__range_ms": "6737667980",
    "__range_s": "9397795485",
    "__range": "6069770749ms",
    "__dashboard": "AwREbnft",
    "__from": datetime(2020, 7, 13, 20, 19, 9, 254000, tzinfo=UTC),
    "__to": datetime(2020, 7, 13, 20, 19, 9, 254000, tzinfo=UTC),
    "__name": "name",
    "__org": 42,
    "__org.name": "orgname",
    "__user.id": 42,
    "__user.login": "user",
    "__user.email": "user@test.com",
    "timeFilter": "time > now() - 7d",
    "__timeFilter": "time > now() - 7d",
    "__auto": "12345ms",
}
RATE_INTERVAL_MS = duration_ms(str(GLOBAL_VARIABLES["__rate_interval"]))
VARIABLE = re.compile(r"\$([0-9A-Za-z_]+)|\$\{([^}]+)\}|\[\[([^\[\]]+)\]\]")


def string_value(name: str, value: object, kind: str, format_: str) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if kind == "date":
            if format_ == "seconds":
                return str(int(value.timestamp()))
            if format_ == "iso":
                return value.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise ValueError(f"unsupported momentjs time format: {format_}")
        if format_ == "date":
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(int(value.timestamp() * 1000))
    sample = str(value)
    values = [sample] * 3
    formats: dict[str, Callable[[], str]] = {
        "csv": lambda: ",".join(values),
        "doublequote": lambda: '"' + '","'.join(values) + '"',
        "glob": lambda: "{" + ",".join(values) + "}",
        "json": lambda: json.dumps(values, separators=(",", ":")),
        "lucene": lambda: '("' + '" OR "'.join(values) + '")',
        "percentencode": lambda: urllib.parse.quote_plus(",".join(values)),
        "pipe": lambda: "|".join(values),
        "raw": lambda: ",".join(values),
        "regex": lambda: "|".join(values),
        "singlequote": lambda: "'" + "','".join(values) + "'",
        "sqlstring": lambda: "'" + "','".join(values) + "'",
        "text": lambda: " + ".join(values),
        "queryparam": lambda: "&".join(f"var-{name}={urllib.parse.quote_plus(v)}" for v in values),
    }
    return formats[format_]() if format_ in formats else sample


def _first(value: object) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def variable_sample_value(text: str, variables: list[Json]) -> str:
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"unknown variable format: {text}")
    name, kind, format_ = parts[0], "", ""
    if len(parts) == 2:
        format_ = parts[1]
    elif len(parts) == 3:
        kind, format_ = parts[1], parts[2]
    if name in GLOBAL_VARIABLES:
        return string_value(name, GLOBAL_VARIABLES[name], kind, format_)
    if name.startswith("__auto_interval"):
        return "10s"
    for variable in variables:
        if variable.get("name") != name:
            continue
        others = [v for v in variables if v.get("name") != name]
        current = _first((variable.get("current") or {}).get("value"))
        if current:
            return expand_variables(current, others)
        if variable.get("options"):
            return expand_variables(_first(variable["options"][0].get("value")), others)
    return string_value(name, name, kind, format_)


def expand_variables(expr: str, variables: list[Json]) -> str:
    parts = expr.split('"')
    for index in range(0, len(parts), 2):  # outside double-quoted strings
        parts[index] = VARIABLE.sub(
            lambda m: variable_sample_value(next(g for g in m.groups() if g), variables),
            parts[index],
        )
    return '"'.join(parts)


def parse_target(expr: str, dashboard: Json) -> Node:
    return parse_promql(expand_variables(expr, templates(dashboard)))


# --- The dashboard model (lint/lint.go) ---------------------------------------------------


def templates(dashboard: Json) -> list[Json]:
    listed: list[Json] = (dashboard.get("templating") or {}).get("list") or []
    return listed


def template_query(template: Json) -> str:
    """A variable's query: a string, or the `query` of an object."""
    if template.get("type") in ("adhoc", "custom"):
        return ""
    query = template.get("query")
    if isinstance(query, dict):
        return str(query.get("query", ""))
    return "" if query is None else str(query)


def panels(dashboard: Json) -> list[Json]:
    """Every panel, in the deprecated `rows` and in `panels`, rows' nested ones too."""

    def nested(panel: Json) -> list[Json]:
        return [panel, *(p for child in panel.get("panels") or [] for p in nested(child))]

    found = [
        p for row in dashboard.get("rows") or [] for r in row.get("panels") or [] for p in nested(r)
    ]
    return found + [p for panel in dashboard.get("panels") or [] for p in nested(panel)]


def datasource_uid(raw: object) -> str:
    """GetDataSource: a datasource is a uid string, or an object with a string uid."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        if not isinstance(raw.get("uid"), str):
            raise ValueError("invalid type for field 'datasource': missing or invalid uid")
        return str(raw["uid"])
    raise ValueError(f"invalid type for field 'datasource': {raw!r}")


def template_datasource(dashboard: Json) -> Json | None:
    return next((t for t in templates(dashboard) if t.get("type") == "datasource"), None)


def is_prometheus(dashboard: Json) -> bool:
    template = template_datasource(dashboard)
    return template is not None and template_query(template) == "prometheus"


def template_named(dashboard: Json, name: str) -> Json | None:
    return next((t for t in templates(dashboard) if t.get("name") == name), None)


# --- Rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    rule: str
    where: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"[{self.rule}] {self.severity}: {self.where} {self.message}"


@dataclass
class Results:
    rule: str
    where: str
    problems: list[Problem] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.problems.append(Problem(self.rule, self.where, message))

    def warning(self, message: str) -> None:
        self.problems.append(Problem(self.rule, self.where, message, "warning"))


@dataclass(frozen=True)
class Rule:
    """A dashboard, panel or target rule, as in lint/rules.go; `lint` runs it over every
    panel and target of a dashboard."""

    name: str
    scope: str  # dashboard, panel, target
    check: Callable[..., None]

    def lint(self, dashboard: Json) -> list[Problem]:
        title = dashboard.get("title", "")
        out: list[Problem] = []
        if self.scope == "dashboard":
            results = Results(self.name, f"Dashboard '{title}'")
            self.check(results, dashboard)
            return results.problems
        for panel in panels(dashboard):
            where = f"Dashboard '{title}', panel '{panel.get('title', '')}'"
            if self.scope == "panel":
                results = Results(self.name, where)
                self.check(results, dashboard, panel)
                out += results.problems
                continue
            for index, target in enumerate(panel.get("targets") or []):
                results = Results(self.name, f"{where}, target idx '{index}'")
                self.check(results, dashboard, panel, target)
                out += results.problems
        return out


PANEL_TYPES = {"stat", "singlestat", "graph", "table", "timeseries", "gauge"}
QUERY_PANEL_TYPES = {"singlestat", "gauge", "table", "stat", "state-timeline", "timeseries"}


def template_datasource_rule(r: Results, d: Json) -> None:
    datasources = [t for t in templates(d) if str(t.get("type", "")).lower() == "datasource"]
    if not datasources:
        r.error("does not have a templated data source")
    for template in datasources:
        query = template_query(template)
        uids = {f"{query.lower()}_datasource"}
        names = {f"{query.title()} data source"}
        uid_error = (
            f"templated data source variable named '{template.get('name')}', "
            f"should be named '{query.lower()}_datasource'"
        )
        name_error = (
            f"templated data source variable labeled '{template.get('label')}', "
            f"should be labeled '{query.title()} data source'"
        )
        if len(datasources) == 1:
            uids.add("datasource")
            names.add("Data source")
            uid_error += ", or 'datasource'"
            name_error += ", or 'Data source'"
        if template.get("name") not in uids:
            r.error(uid_error)
        if template.get("label") not in names:
            r.warning(name_error)


def check_template(r: Results, d: Json, name: str, all_value: str) -> None:
    """lint/rule_template_job.go's checkTemplate, with the All value a parameter."""
    template = template_named(d, name)
    if template is None:
        r.error(f"is missing the {name} template")
        return
    try:
        uid = datasource_uid(template.get("datasource"))
    except ValueError as exc:
        r.error(f"{name} template has invalid datasource {exc}")
        uid = ""
    allowed = {"$datasource", "${datasource}", "$prometheus_datasource", "${prometheus_datasource}"}
    if uid not in allowed:
        r.error(f"{name} template should use datasource '$datasource', is currently '{uid}'")
    if template.get("type") != "query":
        r.error(
            f"{name} template should be a Prometheus query, is currently '{template.get('type')}'"
        )
    if template.get("label") != name.title():
        r.warning(
            f"{name} template should be a labeled '{name.title()}', "
            f"is currently '{template.get('label')}'"
        )
    if not template.get("multi"):
        r.error(f"{name} template should be a multi select")
    if template.get("allValue", "") != all_value:
        r.error(
            f"{name} template allValue should be '{all_value}', "
            f"is currently '{template.get('allValue', '')}'"
        )


def template_required(name: str, all_value: str) -> Callable[[Results, Json], None]:
    def check(r: Results, d: Json) -> None:
        if is_prometheus(d):
            check_template(r, d, name, all_value)

    return check


LABEL_FUNCTIONS = {"label_names", "label_values", "metrics", "query_result"}


def template_label_promql_rule(r: Results, d: Json) -> None:
    """lint/rule_template_label_promql.go. Stricter than upstream, which accepts whatever
    its parser partly recovers: label_values' selector must parse and its label be a label
    name; query_result's query must parse; metrics' regex must compile."""
    if not is_prometheus(d):
        return
    for template in templates(d):
        if template.get("type") != "query":
            continue
        query = template_query(template)
        problem = label_query_problem(query, d)
        if problem:
            r.error(
                f"template '{template.get('name')}' invalid templated label '{query}': {problem}"
            )


def label_query_problem(query: str, d: Json) -> str | None:
    tokens = re.search(r"([a-z_]+)\((.+)\)", query)
    if tokens is None:
        return f"invalid 'query': {query}"
    function, argument = tokens.group(1), tokens.group(2)
    if function not in LABEL_FUNCTIONS:
        return f"invalid 'function': {function}"
    try:
        if function == "label_values":
            selector, _, label = argument.rpartition(",")
            if not LABEL_NAME.fullmatch(label.strip()):
                return f"{label.strip()!r} is not a label name"
            if selector:
                parse_target(selector, d)
        elif function == "query_result":
            parse_target(argument, d)
        elif function == "metrics":
            re.compile(argument)
        elif function == "label_names" and argument.strip():
            parse_target(argument, d)
    except (PromQLError, re.error) as exc:
        return str(exc)
    return None


def template_on_time_change_reload_rule(r: Results, d: Json) -> None:
    for template in templates(d):
        if template.get("type") == "query" and template.get("refresh") != 2:
            r.error(
                f"templated datasource variable named '{template.get('name')}', should be set to "
                "be refreshed 'On Time Range Change (value 2)', "
                f"is currently '{template.get('refresh', 0)}'"
            )


def uneditable_rule(r: Results, d: Json) -> None:
    if d.get("editable"):
        r.error("is editable, it should be set to 'editable: false'")


def panel_datasource_rule(r: Results, d: Json, p: Json) -> None:
    if p.get("type") not in {"singlestat", "graph", "table", "timeseries"}:
        return
    allowed = {
        f"${t.get('name')}" for t in templates(d) if str(t.get("type", "")).lower() == "datasource"
    }
    allowed |= {"${" + name[1:] + "}" for name in allowed}
    try:
        uid = datasource_uid(p.get("datasource"))
    except ValueError as exc:
        r.error(f"has invalid datasource: {exc}'")
        uid = ""
    if uid not in allowed:
        r.error(f"does not use a templated datasource, uses '{uid}'")


def panel_title_description_rule(r: Results, d: Json, p: Json) -> None:
    if p.get("type") in PANEL_TYPES and not (p.get("title") and p.get("description")):
        r.error(
            f"has missing title or description, currently has title '{p.get('title', '')}' "
            f"and description: '{p.get('description', '')}'"
        )


# lint/rule_panel_units.go's units, by category, enumerated there from Grafana's
# packages/grafana-data/src/valueFormats/categories.ts.
UNIT_CATEGORIES = {
    "scalar": "none",
    "misc": "string",
    "short": "short percent percentunit humidity dB hex0x hex sci locale pixel",
    "acceleration": "accMS2 accFS2 accG",
    "angle": "degree radian grad arcmin arcsec",
    "area": "areaM2 areaF2 areaMI2",
    "computation": "flops mflops gflops tflops pflops eflops zflops yflops",
    "concentration": "ppm conppb conngm3 conngNm3 conμgm3 conμgNm3 conmgm3 conmgNm3 congm3 "
    "congNm3 conmgdL conmmolL",
    "currency": "currencyUSD currencyGBP currencyEUR currencyJPY currencyRUB currencyUAH "
    "currencyBRL currencyDKK currencyISK currencyNOK currencySEK currencyCZK currencyCHF "
    "currencyPLN currencyBTC currencymBTC currencyμBTC currencyZAR currencyINR currencyKRW "
    "currencyIDR currencyPHP currencyVND",
    "data": "bytes decbytes bits decbits kbytes deckbytes mbytes decmbytes gbytes decgbytes "
    "tbytes dectbytes pbytes decpbytes",
    "data rate": "pps binBps Bps binbps bps KiBs Kibits KBs Kbits MiBs Mibits MBs Mbits GiBs "
    "Gibits GBs Gbits TiBs Tibits TBs Tbits PiBs Pibits PBs Pbits",
    "date and time": "dateTimeAsIso dateTimeAsIsoNoDateIfToday dateTimeAsUS "
    "dateTimeAsUSNoDateIfToday dateTimeAsLocal dateTimeAsLocalNoDateIfToday dateTimeAsSystem "
    "dateTimeFromNow",
    "energy": "watt kwatt megwatt gwatt mwatt Wm2 voltamp kvoltamp voltampreact kvoltampreact "
    "watth watthperkg kwatth kwattm amph kamph mamph joule ev amp kamp mamp volt kvolt mvolt "
    "dBm ohm kohm Mohm farad µfarad nfarad pfarad ffarad henry mhenry µhenry lumens",
    "flow": "flowgpm flowcms flowcfs flowcfm litreh flowlpm flowmlpm lux",
    "force": "forceNm forcekNm forceN forcekN",
    "hash rate": "Hs KHs MHs GHs THs PHs EHs",
    "mass": "massmg massg masslb masskg masst",
    "length": "lengthmm lengthin lengthft lengthm lengthkm lengthmi",
    "pressure": "pressurembar pressurebar pressurekbar pressurepa pressurehpa pressurekpa "
    "pressurehg pressurepsi",
    "radiation": "radbq radci radgy radrad radsv radmsv radusv radrem radexpckg radr radsvh "
    "radmsvh radusvh",
    "rotational speed": "rotrpm rothz rotrads rotdegs",
    "temperature": "celsius fahrenheit kelvin",
    "time": "hertz ns µs ms s m h d dtdurationms dtdurations dthms dtdhms timeticks clockms clocks",
    "throughput": "cps ops reqps rps wps iops cpm opm rpm wpm mps mpm",
    "velocity": "velocityms velocitykmh velocitymph velocityknot",
    "volume": "mlitre litre m3 Nm3 dm3 gallons",
    "boolean": "bool bool_yes_no bool_on_off",
}
VALID_UNITS = {unit for units in UNIT_CATEGORIES.values() for unit in units.split()}


def configured_unit(p: Json) -> str:
    """An override's unit, else the default's."""
    field_config = p.get("fieldConfig") or {}
    unit = ""
    for override in field_config.get("overrides") or []:
        for prop in override.get("properties") or []:
            if prop.get("id") == "unit":
                unit = str(prop.get("value"))
    return unit or str((field_config.get("defaults") or {}).get("unit") or "")


def value_mappings(p: Json) -> object:
    field_config = p.get("fieldConfig") or {}
    for override in field_config.get("overrides") or []:
        for prop in override.get("properties") or []:
            if prop.get("id") == "mappings" and prop.get("value") is not None:
                return prop["value"]
    return (field_config.get("defaults") or {}).get("mappings")


def panel_units_rule(r: Results, d: Json, p: Json) -> None:
    if p.get("type") not in PANEL_TYPES:
        return
    if p.get("type") == "stat" and ((p.get("options") or {}).get("reduceOptions") or {}).get(
        "fields"
    ):
        return  # a stat of non-numeric fields
    if value_mappings(p) is not None:
        return
    unit = configured_unit(p)
    if unit not in VALID_UNITS:
        r.error(f"has no or invalid units defined: '{unit}'")


def panel_no_targets_rule(r: Results, d: Json, p: Json) -> None:
    # Upstream accepts `"targets": []` (a non-nil empty slice); an empty list is none here.
    if p.get("type") in PANEL_TYPES and not p.get("targets"):
        r.error("has no targets")


def target_promql_rule(r: Results, d: Json, p: Json, t: Json) -> None:
    if not is_prometheus(d) or p.get("type") not in QUERY_PANEL_TYPES:
        return
    expr = t.get("expr") or ""
    referenced = t.get("panelId", 0)
    if not expr and referenced > 0 and referenced not in {p.get("id") for p in panels(d)}:
        r.error("Invalid panel reference in target")
    try:
        parse_target(expr, d)
    except (PromQLError, ValueError) as exc:
        r.error(f"invalid PromQL query '{expr}': {exc}")


def target_rate_interval_rule(r: Results, d: Json, p: Json, t: Json) -> None:
    if not is_prometheus(d) or p.get("type") not in QUERY_PANEL_TYPES:
        return
    expr = t.get("expr") or ""
    try:
        node = parse_target(expr, d)
    except (PromQLError, ValueError):
        return  # invalid PromQL is another rule's
    for found, path in walk(node):
        if not isinstance(found, MatrixSelector) or found.range_ms == RATE_INTERVAL_MS or not path:
            continue
        parent = path[-1]
        if not isinstance(parent, Call):
            r.error(f"invalid PromQL query '{expr}': $__rate_interval used in non-rate function")
            return
        if parent.func in ("rate", "irate"):
            r.error(f"invalid PromQL query '{expr}': should use $__rate_interval")
            return


def check_for_matcher(selector: VectorSelector, name: str, value: str) -> str | None:
    """lint/target_utils.go: the selector has `name=~"value"`; else why not."""
    problem: str | None = f"{name} selector not found"
    for matcher in selector.matchers:
        if matcher.name != name:
            continue
        if matcher.op == "=~" and matcher.value == value:
            return None
        if matcher.op != "=~":
            problem = f"{name} selector is {matcher.op}, not =~"
        if matcher.value != value:
            problem = f"{name} selector is {matcher.value}, not {value}"
    return problem


def target_required_matcher(
    label: str, variable: str
) -> Callable[[Results, Json, Json, Json], None]:
    """lint/rule_target_job_instance.go: every selector has `label=~"$variable"`."""

    def check(r: Results, d: Json, p: Json, t: Json) -> None:
        if not is_prometheus(d):
            return
        expr = t.get("expr") or ""
        try:
            node = parse_target(expr, d)
        except (PromQLError, ValueError):
            return
        for selector in selectors(node):
            problem = check_for_matcher(selector, label, f"${variable}")
            if problem:
                r.error(f"invalid PromQL query '{expr}': {problem}")

    return check


def target_counter_agg_rule(r: Results, d: Json, p: Json, t: Json) -> None:
    """lint/rule_target_counter_agg.go: a counter (`*_total`) only inside
    rate/irate/increase(counter[range]). Upstream tests the printed selector, which ends
    in `}` once it has a matcher, so a counter with matchers slipped through; the metric
    name is tested here."""
    try:
        node = parse_target(t.get("expr") or "", d)
    except (PromQLError, ValueError):
        return
    for found, path in walk(node):
        if not isinstance(found, VectorSelector) or not found.name.endswith("_total"):
            continue
        if not (
            len(path) >= 2
            and isinstance(path[-1], MatrixSelector)
            and isinstance(path[-2], Call)
            and path[-2].func in ("rate", "irate", "increase")
        ):
            r.error(
                f"counter metric '{found.name}' is not aggregated with rate, irate, or increase"
            )
            return


# The rules of github.com/grafana/dashboard-linter's lint/rules.go NewRuleSet, by name.
# Not applied to these dashboards, and why:
# - template-job-rule, template-instance-rule, target-job-rule, target-instance-rule: the
#   dashboards show a service (or the operator, or analytics) across its pods, selected by
#   namespace and service; a job or instance variable would pick one scrape target, which
#   nothing here needs. Their namespace (and service, workshop) counterparts below apply.
# - target-logql-rule, target-logql-auto-rule: no Loki; every query is PromQL.
UPSTREAM_RULES = [
    Rule("template-datasource-rule", "dashboard", template_datasource_rule),
    Rule("template-job-rule", "dashboard", template_required("job", ".+")),
    Rule("template-instance-rule", "dashboard", template_required("instance", ".+")),
    Rule("template-label-promql-rule", "dashboard", template_label_promql_rule),
    Rule("template-on-time-change-reload-rule", "dashboard", template_on_time_change_reload_rule),
    Rule("panel-datasource-rule", "panel", panel_datasource_rule),
    Rule("panel-title-description-rule", "panel", panel_title_description_rule),
    Rule("panel-units-rule", "panel", panel_units_rule),
    Rule("panel-no-targets-rule", "panel", panel_no_targets_rule),
    Rule("target-promql-rule", "target", target_promql_rule),
    Rule("target-rate-interval-rule", "target", target_rate_interval_rule),
    Rule("target-job-rule", "target", target_required_matcher("job", "job")),
    Rule("target-instance-rule", "target", target_required_matcher("instance", "instance")),
    Rule("target-counter-agg-rule", "target", target_counter_agg_rule),
    Rule("uneditable-dashboard", "dashboard", uneditable_rule),
]
NOT_APPLICABLE = {
    "template-job-rule",
    "template-instance-rule",
    "target-job-rule",
    "target-instance-rule",
}


# --- The platform's own rules ------------------------------------------------------------


def scope_variables(d: Json) -> dict[str, str]:
    """label -> variable, for each query variable `label_values(..., label)`."""
    scoped = {}
    for template in templates(d):
        found = re.fullmatch(r"label_values\((?:.*,)?\s*(\w+)\s*\)", template_query(template))
        if template.get("type") == "query" and found:
            scoped[found.group(1)] = str(template["name"])
    return scoped


def dashboard_identity_rule(r: Results, d: Json) -> None:
    """A fixed uid, the sukverse tag, the last hour, a refresh; no upstream rule covers it."""
    names = {f"sukverse-{name}" for name in NAMES}
    if d.get("uid") not in names:
        r.error(f"uid '{d.get('uid')}' is not one of {sorted(names)}")
    if "sukverse" not in (d.get("tags") or []):
        r.error(f"is not tagged 'sukverse': {d.get('tags')}")
    if d.get("time") != {"from": "now-1h", "to": "now"}:
        r.error(f"does not show the last hour: {d.get('time')}")
    if not d.get("refresh"):
        r.error("does not refresh")


def template_scope_rule(r: Results, d: Json) -> None:
    """checkTemplate for the namespace variable and every other label_values variable; All
    is `.*`, which also matches series without the label (Prometheus outside a cluster)."""
    if template_named(d, "namespace") is None:
        r.error("is missing the namespace template")
    for variable in scope_variables(d).values():
        check_template(r, d, variable, generator.ALL)
        template = template_named(d, variable) or {}
        if not template.get("includeAll"):
            r.error(f"{variable} template should include All")
    namespace = template_query(template_named(d, "namespace") or {})
    if not re.fullmatch(r"label_values\(\w+, namespace\)", namespace):
        r.error(
            f"namespace template query should be label_values(<metric>, namespace): '{namespace}'"
        )


def target_scope_rule(r: Results, d: Json, p: Json, t: Json) -> None:
    """target-job-rule's check for each label a variable selects by: namespace=~"$namespace"
    and, per dashboard, service=~"$service" or workshop_id=~"$workshop"."""
    for label, variable in scope_variables(d).items():
        target_required_matcher(label, variable)(r, d, p, t)


def layout_rule(r: Results, d: Json) -> None:
    """Rows group the panels; every panel has a gridPos inside the 24 columns, none
    overlaps another, ids are unique."""
    top = d.get("panels") or []
    if not top or top[0].get("type") != "row":
        r.error("does not start with a row")
    taken: dict[tuple[int, int], str] = {}
    ids: set[object] = set()
    for panel in panels(d):
        title = panel.get("title", "")
        if panel.get("id") in ids or panel.get("id") is None:
            r.error(f"panel '{title}' has a missing or repeated id {panel.get('id')}")
        ids.add(panel.get("id"))
        pos = panel.get("gridPos") or {}
        if not all(isinstance(pos.get(k), int) for k in ("x", "y", "w", "h")):
            r.error(f"panel '{title}' has no explicit gridPos")
            continue
        if pos["x"] < 0 or pos["w"] < 1 or pos["h"] < 1 or pos["x"] + pos["w"] > 24:
            r.error(f"panel '{title}' is off the 24-column grid: {pos}")
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                if (x, y) in taken:
                    r.error(f"panel '{title}' overlaps '{taken[(x, y)]}' at x={x}, y={y}")
                    break
                taken[(x, y)] = title
            else:
                continue
            break


def panel_complete_rule(r: Results, d: Json, p: Json) -> None:
    """Every panel but a row, whatever its type (bar gauges too): a title, a description,
    a valid unit, the templated datasource, targets that use it too."""
    if p.get("type") == "row":
        return
    if not p.get("title") or not p.get("description"):
        r.error("has no title or no description")
    unit = configured_unit(p)
    if unit not in VALID_UNITS:
        r.error(f"has no or invalid unit: '{unit}'")
    if datasource_uid(p.get("datasource")) != "${datasource}":
        r.error(f"does not use ${{datasource}}: {p.get('datasource')}")
    if not p.get("targets"):
        r.error("has no targets")
    for target in p.get("targets") or []:
        if datasource_uid(target.get("datasource")) != "${datasource}":
            r.error(f"target {target.get('refId')} does not use ${{datasource}}")


def target_rate_interval_everywhere_rule(r: Results, d: Json, p: Json, t: Json) -> None:
    """Every range, in rate, irate and increase alike, is $__rate_interval (upstream lets
    increase take another)."""
    try:
        node = parse_target(t.get("expr") or "", d)
    except (PromQLError, ValueError) as exc:
        r.error(f"does not parse: {exc}")
        return
    for found, _ in walk(node):
        if isinstance(found, MatrixSelector) and found.range_ms != RATE_INTERVAL_MS:
            r.error(f"'{t.get('expr')}' has a range other than $__rate_interval")
        if isinstance(found, SubqueryExpr):
            r.error(f"'{t.get('expr')}' has a subquery")


def kept_labels(node: Node) -> set[str]:
    """Labels the outermost aggregations keep (`by`), and those label_replace adds."""
    kept: set[str] = set()
    for found, _ in walk(node):
        if isinstance(found, AggregateExpr) and not found.without:
            kept |= set(found.grouping)
        if isinstance(found, Call) and found.func in ("label_replace", "label_join"):
            destination = found.args[1]
            if isinstance(destination, StringLiteral):
                kept.add(destination.value)
    return kept


def target_legend_rule(r: Results, d: Json, p: Json, t: Json) -> None:
    """A legend that names the series, from labels the query keeps."""
    legend = t.get("legendFormat") or ""
    if not legend or legend == "__auto":
        r.error("has no legend")
        return
    try:
        node = parse_target(t.get("expr") or "", d)
    except (PromQLError, ValueError):
        return
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    if not used:
        r.error(f"legend '{legend}' names no label: every series would look the same")
    missing = used - kept_labels(node) - {"__name__"}
    if missing:
        r.error(f"legend '{legend}' uses {sorted(missing)}, which the query does not keep")


def target_catalogue_rule(r: Results, d: Json, p: Json, t: Json) -> None:
    """Every metric a query reads is in the generator's catalogue, and every label it
    matches on is one that metric has."""
    try:
        node = parse_target(t.get("expr") or "", d)
    except (PromQLError, ValueError):
        return
    for selector in selectors(node):
        check_selector(r, selector)


def check_selector(r: Results, selector: VectorSelector) -> None:
    if selector.name not in generator.SERIES:
        r.error(f"reads '{selector.name}', which is not in the catalogue")
        return
    for matcher in selector.matchers:
        if matcher.name not in generator.SERIES[selector.name]:
            r.error(f"matches '{selector.name}' on '{matcher.name}', a label it does not have")


def template_catalogue_rule(r: Results, d: Json) -> None:
    """The variables' queries read catalogued metrics only, by labels they have."""
    for template in templates(d):
        query = template_query(template)
        found = re.fullmatch(r"label_values\((.+),\s*(\w+)\s*\)", query)
        if template.get("type") != "query":
            continue
        if found is None:
            r.error(f"template '{template.get('name')}' is not label_values(<selector>, <label>)")
            continue
        try:
            node = parse_target(found.group(1), d)
        except (PromQLError, ValueError) as exc:
            r.error(f"template '{template.get('name')}' does not parse: {exc}")
            continue
        for selector in selectors(node):
            check_selector(r, selector)
            if found.group(2) not in generator.SERIES.get(selector.name, {found.group(2)}):
                r.error(f"'{selector.name}' has no label '{found.group(2)}'")


HOUSE_RULES = [
    Rule("dashboard-identity-rule", "dashboard", dashboard_identity_rule),
    Rule("template-scope-rule", "dashboard", template_scope_rule),
    Rule("layout-rule", "dashboard", layout_rule),
    Rule("panel-complete-rule", "panel", panel_complete_rule),
    Rule("target-scope-rule", "target", target_scope_rule),
    Rule("target-rate-interval-everywhere-rule", "target", target_rate_interval_everywhere_rule),
    Rule("target-legend-rule", "target", target_legend_rule),
]
CATALOGUE_RULES = [
    Rule("target-catalogue-rule", "target", target_catalogue_rule),
    Rule("template-catalogue-rule", "dashboard", template_catalogue_rule),
]
ALL_RULES = UPSTREAM_RULES + HOUSE_RULES + CATALOGUE_RULES
APPLIED = [rule for rule in ALL_RULES if rule.name not in NOT_APPLICABLE]


# --- A dashboard that breaks every rule ------------------------------------------------------

BROKEN: Json = {
    "title": "Broken",
    "uid": "broken",
    "editable": True,
    "tags": [],
    "time": {"from": "now-7d", "to": "now"},
    "templating": {
        "list": [
            {"name": "ds", "label": "Source", "type": "datasource", "query": "prometheus"},
            {
                "name": "job",
                "label": "job",
                "type": "query",
                "query": "label_values(up, job)",
                "datasource": "prom",
                "refresh": 1,
                "multi": False,
            },
            {
                "name": "namespace",
                "label": "namespace",
                "type": "query",
                "query": "label_values(up{, namespace)",
                "datasource": "prom",
                "refresh": 1,
                "multi": True,
                "allValue": ".+",
            },
            {
                "name": "instance",
                "label": "Instance",
                "type": "custom",
                "query": "a,b",
                "multi": True,
                "allValue": ".+",
            },
        ]
    },
    "panels": [
        {
            "id": 1,
            "type": "timeseries",
            "title": "Overlapping, without a row",
            "datasource": {"type": "prometheus", "uid": "prom"},
            "gridPos": {"x": 20, "y": 0, "w": 8, "h": 8},
            "fieldConfig": {"defaults": {"unit": "furlongs"}},
            "targets": [
                {"refId": "A", "expr": "sum(rate(http_requests_total[5m]))", "legendFormat": ""},
                {"refId": "B", "expr": 'sum(http_requests_total{job="x"})'},
                {"refId": "C", "expr": "sum(rate(foo[$__rate_interval])", "legendFormat": "{{x}}"},
                {
                    "refId": "D",
                    "expr": 'max(sukverse_ready{namespace=~"$namespace", colour="red"})',
                    "datasource": {"uid": "${datasource}"},
                    "legendFormat": "{{service}}",
                },
            ],
        },
        {
            "id": 1,
            "type": "stat",
            "title": "",
            "gridPos": {"x": 20, "y": 4, "w": 4, "h": 4},
        },
    ],
}


# --- Tests -------------------------------------------------------------------------------


def test_the_committed_dashboards_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = generator.write(tmp_path)
    assert [p.name for p in written] == [f"{name}.json" for name in NAMES]
    for path in written:
        committed = FOLDER / path.name
        assert committed.is_file(), (
            f"{committed} is missing: run python -m observability.dashboards"
        )
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed} is not what the generator writes: run python -m observability.dashboards"
        )
    assert generator.main(["--check"]) == 0
    extra = sorted({p.name for p in FOLDER.glob("*.json")} - {p.name for p in written})
    assert not extra, (
        f"JSON files in observability/dashboards the generator does not write: {extra}"
    )


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    generator.write(tmp_path)
    (tmp_path / "operator.json").write_text("{}\n")
    assert generator.main(["--check", "--output", str(tmp_path)]) == 1


def test_the_json_is_stable_sorted_and_indented() -> None:
    for name in NAMES:
        text = (FOLDER / f"{name}.json").read_text(encoding="utf-8")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
        assert generator.render(name) == generator.render(name)


def test_the_dashboards_have_their_uids_titles_and_variables() -> None:
    expected = {
        "platform": (
            "sukverse-platform",
            "Sukverse / Platform",
            ["datasource", "namespace", "service"],
        ),
        "learning": (
            "sukverse-learning",
            "Sukverse / Learning analytics",
            ["datasource", "namespace", "workshop"],
        ),
        "operator": ("sukverse-operator", "Sukverse / Operator", ["datasource", "namespace"]),
    }
    for name, (uid, title, variables) in expected.items():
        dashboard = load(name)
        assert (dashboard["uid"], dashboard["title"]) == (uid, title)
        assert [t["name"] for t in templates(dashboard)] == variables
    kinds = {p["type"] for p in panels(load("learning"))}
    assert {"stat", "bargauge", "timeseries"} <= kinds


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rule", APPLIED, ids=lambda rule: rule.name)
def test_lint(rule: Rule, name: str) -> None:
    problems = rule.lint(load(name))
    assert not problems, "\n".join(map(str, problems))


# What each rule must say of BROKEN: one of the faults planted for it.
BROKEN_FAULTS = {
    "template-datasource-rule": "variable named 'ds', should be named 'prometheus_datasource'",
    "template-job-rule": "job template should be a multi select",
    "template-instance-rule": "instance template should be a Prometheus query",
    "template-label-promql-rule": "template 'namespace' invalid templated label",
    "template-on-time-change-reload-rule": "named 'job', should be set to be refreshed",
    "panel-datasource-rule": "does not use a templated datasource, uses 'prom'",
    "panel-title-description-rule": "has missing title or description",
    "panel-units-rule": "has no or invalid units defined: 'furlongs'",
    "panel-no-targets-rule": "has no targets",
    "target-promql-rule": "invalid PromQL query 'sum(rate(foo[$__rate_interval])'",
    "target-rate-interval-rule": "should use $__rate_interval",
    "target-job-rule": "job selector is x, not $job",
    "target-instance-rule": "instance selector not found",
    "target-counter-agg-rule": "counter metric 'http_requests_total' is not aggregated",
    "uneditable-dashboard": "is editable",
    "dashboard-identity-rule": "uid 'broken' is not one of",
    "template-scope-rule": "namespace template allValue should be '.*', is currently '.+'",
    "layout-rule": "overlaps 'Overlapping, without a row'",
    "panel-complete-rule": "does not use ${datasource}",
    "target-scope-rule": "namespace selector not found",
    "target-rate-interval-everywhere-rule": "has a range other than $__rate_interval",
    "target-legend-rule": "uses ['service'], which the query does not keep",
    "target-catalogue-rule": "matches 'sukverse_ready' on 'colour'",
    "template-catalogue-rule": "reads 'up', which is not in the catalogue",
}


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_each_rule_reports_a_broken_dashboard(rule: Rule) -> None:
    """The linter can fail: each rule finds the fault planted for it in BROKEN."""
    problems = rule.lint(BROKEN)
    said = "\n".join(map(str, problems))
    assert BROKEN_FAULTS[rule.name] in said, f"{rule.name} missed its fault; it said:\n{said}"
    assert all(p.rule == rule.name for p in problems)


def test_every_rule_has_a_planted_fault() -> None:
    assert sorted(BROKEN_FAULTS) == sorted(rule.name for rule in ALL_RULES)


def test_the_catalogue_rules_refuse_unknown_metrics_and_labels() -> None:
    dashboard = load("operator")
    panel: Json = {"title": "p"}
    r = Results("target-catalogue-rule", "here")
    target = {"expr": 'rate(up_total{namespace=~"$namespace"}[$__rate_interval])'}
    target_catalogue_rule(r, dashboard, panel, target)
    assert [p.message for p in r.problems] == ["reads 'up_total', which is not in the catalogue"]
    r = Results("target-catalogue-rule", "here")
    target = {"expr": 'sukverse_operator_cohorts{namespace=~"$namespace", service="x"}'}
    target_catalogue_rule(r, dashboard, panel, target)
    assert [p.message for p in r.problems] == [
        "matches 'sukverse_operator_cohorts' on 'service', a label it does not have"
    ]


def test_every_query_reads_the_catalogue_only() -> None:
    used = set()
    for name in NAMES:
        dashboard = load(name)
        for panel in panels(dashboard):
            for target in panel.get("targets") or []:
                used |= {s.name for s in selectors(parse_target(target["expr"], dashboard))}
    assert used <= generator.SERIES.keys(), sorted(used - generator.SERIES.keys())
    # Every family is on some dashboard.
    families = {metric.name for metric in generator.CATALOGUE}
    shown = {m.name for m in generator.CATALOGUE if any(s in used for s in m.series())}
    assert shown == families, sorted(families - shown)


def test_the_generator_refuses_what_is_not_catalogued() -> None:
    scope = generator.Scope((("namespace", "namespace"),))
    with pytest.raises(ValueError, match="not in the catalogue"):
        scope.select("up")
    with pytest.raises(ValueError, match="has no label service"):
        scope.select("sukverse_operator_cohorts", 'service="x"')


def test_failure_panels_fall_back_to_zeros() -> None:
    """Panels of failures read a label value only a failure creates; each also returns
    zeros from a series every healthy platform has."""
    for name, title, absent in [
        ("platform", "5xx ratio", 'status=~"5.."'),
        ("platform", "Handler errors", "sukverse_event_handler_errors_total"),
        ("platform", "Dead letters", 'outcome="dead_lettered"'),
        ("operator", "Reconcile errors by reason", "sukverse_operator_reconcile_errors_total"),
    ]:
        (expr,) = [e for t, _, e in generator.targets(name) if t == title]
        assert absent in expr and " or " in expr and "* 0" in expr, (title, expr)


# PromQL Prometheus refuses, each with what is wrong: the Python parser must refuse them
# too, and promtool confirms it does.
INVALID_PROMQL = [
    "sum(rate(foo[5m])",  # unbalanced
    "rate(foo)",  # an instant vector where a range is expected
    "foo[5m] + 1",  # a range in a binary expression
    "sum by (a) (foo",  # unbalanced
    "histogram_quantile(foo, 0.9)",  # argument types swapped
    "nope(foo)",  # unknown function
    '{a=""}',  # no non-empty matcher
    'foo{a=~"("}',  # bad regex
    "1 > 2",  # scalars compared without bool
    "foo and 1",  # a set operator on a scalar
    "sum(foo) by (a) by (b)",
    "rate(foo[5m:])[1m]",  # a range of a range vector
    "label_replace(foo, 1, 'a', 'b', 'c')",  # a number where a string is expected
]


@pytest.mark.parametrize("expr", INVALID_PROMQL)
def test_the_parser_refuses_invalid_promql(expr: str) -> None:
    with pytest.raises(PromQLError):
        parse_promql(expr)


def test_the_parser_reads_what_the_rules_walk() -> None:
    node = parse_promql('sum by (a) (rate(foo_total{b=~"x"}[5m])) / on () group_left bar')
    assert isinstance(node, BinaryExpr) and node.on == [] and node.group == "group_left"
    assert [s.name for s in selectors(node)] == ["foo_total", "bar"]
    ((matrix, path),) = [(n, p) for n, p in walk(node) if isinstance(n, MatrixSelector)]
    assert isinstance(path[-1], Call) and path[-1].func == "rate" and matrix.range_ms == 300_000
    assert expand_variables('rate(x{a="$a"}[$__rate_interval])', []) == (
        'rate(x{a="$a"}[8869990787ms])'
    )


def promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(found).exists():
        from conftest import hack

        hack("prometheus.sh", "install")
    return found


def test_promtool_parses_every_query_and_refuses_the_invalid_ones(tmp_path: Path) -> None:
    """Each query, its variables expanded as the linter does, is a recording rule in a file
    of its own that `promtool check rules` parses with Prometheus' own parser."""
    files: dict[str, str] = {}
    for name in NAMES:
        dashboard = load(name)
        queries = [
            (f"{name}-panel{p['id']}-{t['refId']}", t["expr"])
            for p in panels(dashboard)
            for t in p.get("targets") or []
        ]
        queries += [
            (
                f"{name}-variable-{t['name']}",
                re.sub(r"^label_values\((.+),\s*\w+\)$", r"\1", template_query(t)),
            )
            for t in templates(dashboard)
            if t.get("type") == "query"
        ]
        for key, expr in queries:
            files[key] = expand_variables(expr, templates(dashboard))
    invalid = {f"invalid-{i}": expr for i, expr in enumerate(INVALID_PROMQL)}
    paths = {}
    for key, expr in {**files, **invalid}.items():
        path = tmp_path / f"{key}.yaml"
        rule = {"groups": [{"name": key, "rules": [{"record": "sukverse:check", "expr": expr}]}]}
        path.write_text(json.dumps(rule))  # JSON is YAML
        paths[key] = path
    binary = promtool()
    for key, path in paths.items():
        result = subprocess.run(
            [binary, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        expr = files.get(key) or invalid[key]
        if key in files:
            assert result.returncode == 0, f"{key}: {expr}\n{result.stdout}{result.stderr}"
        else:
            assert result.returncode != 0, f"promtool accepts {expr!r}, which the parser refuses"
