"""AWS IoT Core topic rules, applied locally to messages on an MQTT broker.

moto stores topic rules but routes nothing, so the local cloud evaluates the rule SQL itself.
`TopicRule` parses the subset of the IoT SQL (version 2016-03-23) that dxops's rules use and
computes what the rule would send to its action; `IotRulesBridge` subscribes to a broker with
paho-mqtt and hands each result to a callable standing in for the action (or for the rule's
error action).

Supported SQL::

    SELECT <item>, ... FROM '<topic filter>' [WHERE <condition>]

- items: ``*`` (the whole JSON payload object), or an expression with ``AS name``; a plain
  attribute may omit ``AS`` (the key is its last segment, as on AWS). Later items overwrite
  earlier keys, so ``SELECT *, topic(3) AS device_id`` cannot be spoofed by the payload.
- ``encode(*, 'base64')``: the raw payload in base64 (no JSON needed), as AWS documents for
  binary payloads.
- expressions: attributes (``a``, ``a.b.c``), literals ('string', 42, 1.5, true, false, null),
  ``topic()``, ``topic(n)`` (1-based; beyond the last level is Undefined), ``timestamp()``
  (epoch ms of the rules engine), ``clientid()``, comparisons ``= <> < > <= >=``, ``AND``,
  ``OR``, ``NOT`` and parentheses.
- the FROM filter may use the MQTT wildcards ``+`` and ``#``.

Semantics follow the AWS IoT SQL reference: a missing attribute is Undefined and an Undefined
value is left out of the output; ``<, >, <=, >=`` convert both operands to decimals (a string
that is not a number gives Undefined); ``=`` of different types is false; ``AND``/``OR``/``NOT``
take booleans or the strings "true"/"false", and any other operand, Undefined included, makes
the result Undefined (the reference's tables define no short-circuit, so even
``true OR Undefined`` is Undefined here: do not rely on it either way); a message matches only
when WHERE is true. An Undefined SELECT item also removes a key that ``*`` put there.

A rule that reads the payload (``*`` or any attribute) needs it to be JSON, and ``*`` needs a
JSON object; otherwise `TopicRule.apply` raises `RulePayloadError` and the bridge reports the
message through ``on_error`` (the stand-in for the rule's error action) instead of dropping it
silently. Numbers compare by value (10 = 10.0), as in SQL version 2016-03-23.

Not supported (raises `RuleSqlError` when the rule is parsed): arithmetic, ``IN``, ``LIKE``,
``IS [NOT] NULL``, ``BETWEEN``, ``CASE``, ``!=`` (IoT SQL spells it ``<>``), double-quoted or
backticked identifiers, array indexing, ``attr.*``, nested SELECTs, ``SELECT VALUE`` (a syntax
error here) and every function other than ``topic``, ``timestamp``, ``clientid`` and
``encode(*, 'base64')`` (the payload's bytes in base64, JSON or not: what dxops's rule uses).
Expressions other than plain attributes need ``AS``. Binary (non-JSON) payloads are not passed
through by ``SELECT *``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import operator
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

__all__ = [
    "UNDEFINED",
    "BridgeStats",
    "IotRulesBridge",
    "RulePayloadError",
    "RuleSqlError",
    "TopicRule",
    "decode_original_payload",
    "topic_matches",
    "validate_topic_filter",
]


class RuleSqlError(ValueError):
    """The rule SQL is invalid, or valid IoT SQL that this local engine does not implement."""


class RulePayloadError(ValueError):
    """A message cannot be evaluated by the rule (payload not JSON, or not an object for ``*``)."""


class _UndefinedType:
    """IoT SQL's Undefined: not a value; dropped from the output, false-ish in WHERE."""

    _instance: _UndefinedType | None = None

    def __new__(cls) -> _UndefinedType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final[_UndefinedType] = _UndefinedType()


# --------------------------------------------------------------------------------------------
# Topic filters
# --------------------------------------------------------------------------------------------


def validate_topic_filter(topic_filter: str) -> None:
    """Refuse filters that an MQTT broker (and IoT Core) would refuse."""
    if not topic_filter or "\x00" in topic_filter:
        raise RuleSqlError("the FROM topic filter must be a non-empty string")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise RuleSqlError(f"'#' must be the whole last level of the topic filter: {topic_filter!r}")
        if "+" in level and level != "+":
            raise RuleSqlError(f"'+' must be a whole level of the topic filter: {topic_filter!r}")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 matching: ``+`` is one level, ``#`` the rest (parent included); ``$`` topics
    are not matched by a leading wildcard."""
    if not topic or "+" in topic or "#" in topic:
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in {"+", "#"}:
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level not in {"+", topic_levels[index]}:
            return False
    return len(filter_levels) == len(topic_levels)


# --------------------------------------------------------------------------------------------
# Tokens and syntax tree
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<string>'[^']*')
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<op><>|<=|>=|=|<|>)
    |(?P<punct>[(),.*])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)

_RESERVED: Final = frozenset({"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "TRUE", "FALSE", "NULL"})
_UNSUPPORTED_KEYWORDS: Final = frozenset(
    {"IN", "LIKE", "IS", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "END", "DISTINCT"}
    | {"ORDER", "GROUP", "BY", "HAVING", "LIMIT", "JOIN", "UNION"}
)
_UNSUPPORTED_CHARS: Final = {
    "!": "'!=' is not IoT SQL: use '<>'",
    '"': "double-quoted identifiers are not supported",
    "`": "backticked identifiers are not supported",
    "[": "array indexing is not supported",
    "+": "arithmetic is not supported",
    "-": "arithmetic is not supported",
    "/": "arithmetic is not supported",
    "%": "arithmetic is not supported",
    "|": "string concatenation is not supported",
    "'": "unterminated string literal",
}
_FUNCTIONS: Final = ("topic", "timestamp", "clientid", "encode")


class _Token(NamedTuple):
    kind: str  # string | number | op | punct | ident | end
    text: str
    pos: int

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "ident" and self.text.upper() in words


def _tokenize(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(sql):
        match = _TOKEN_RE.match(sql, pos)
        if match is None:
            char = sql[pos]
            reason = _UNSUPPORTED_CHARS.get(char, f"unexpected character {char!r}")
            raise RuleSqlError(f"{reason} (at offset {pos})")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(sql)))
    return tokens


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class _Attribute:
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Expr


@dataclass(frozen=True, slots=True)
class _Logic:
    op: str  # AND | OR
    left: _Expr
    right: _Expr


@dataclass(frozen=True, slots=True)
class _Compare:
    op: str
    left: _Expr
    right: _Expr


_Expr = _Literal | _Attribute | _Call | _Not | _Logic | _Compare


@dataclass(frozen=True, slots=True)
class _Star:
    pass


@dataclass(frozen=True, slots=True)
class _Field:
    expr: _Expr
    alias: str


_SelectItem = _Star | _Field


@dataclass(frozen=True, slots=True)
class _Statement:
    items: tuple[_SelectItem, ...]
    topic_filter: str
    where: _Expr | None


# --------------------------------------------------------------------------------------------
# Parser (recursive descent; precedence OR < AND < NOT < comparison)
# --------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, sql: str) -> None:
        self._tokens = _tokenize(sql)
        self._index = 0

    @property
    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _error(self, message: str, token: _Token | None = None) -> RuleSqlError:
        token = token or self._peek
        where = "at end of SQL" if token.kind == "end" else f"at {token.text!r} (offset {token.pos})"
        return RuleSqlError(f"{message} {where}")

    def _accept_keyword(self, word: str) -> bool:
        if self._peek.is_keyword(word):
            self._index += 1
            return True
        return False

    def _expect_keyword(self, word: str) -> None:
        if not self._accept_keyword(word):
            raise self._error(f"expected {word}")

    def _accept_punct(self, char: str) -> bool:
        if self._peek.kind == "punct" and self._peek.text == char:
            self._index += 1
            return True
        return False

    def _expect_punct(self, char: str) -> None:
        if not self._accept_punct(char):
            raise self._error(f"expected {char!r}")

    def parse(self) -> _Statement:
        self._expect_keyword("SELECT")
        items = [self._select_item()]
        while self._accept_punct(","):
            items.append(self._select_item())
        self._expect_keyword("FROM")
        token = self._next()
        if token.kind != "string":
            raise self._error("expected a quoted topic filter after FROM", token)
        topic_filter = token.text[1:-1]
        validate_topic_filter(topic_filter)
        where = self._expr() if self._accept_keyword("WHERE") else None
        if self._peek.kind != "end":
            raise self._error("unexpected token")
        return _Statement(tuple(items), topic_filter, where)

    def _select_item(self) -> _SelectItem:
        if self._accept_punct("*"):
            return _Star()
        expr = self._expr()
        if self._accept_keyword("AS"):
            return _Field(expr, self._identifier())
        if isinstance(expr, _Attribute):
            return _Field(expr, expr.path[-1])
        raise self._error("a SELECT expression other than a plain attribute needs 'AS name'")

    def _identifier(self) -> str:
        token = self._next()
        if token.kind != "ident":
            raise self._error("expected a name", token)
        self._refuse_keyword(token)
        return token.text

    def _refuse_keyword(self, token: _Token) -> None:
        word = token.text.upper()
        if word in _UNSUPPORTED_KEYWORDS:
            raise self._error(f"{word} is not supported by the local rules engine", token)
        if word in _RESERVED:
            raise self._error("unexpected keyword", token)

    def _expr(self) -> _Expr:
        left = self._and()
        while self._accept_keyword("OR"):
            left = _Logic("OR", left, self._and())
        return left

    def _and(self) -> _Expr:
        left = self._not()
        while self._accept_keyword("AND"):
            left = _Logic("AND", left, self._not())
        return left

    def _not(self) -> _Expr:
        if self._accept_keyword("NOT"):
            return _Not(self._not())
        return self._comparison()

    def _comparison(self) -> _Expr:
        left = self._primary()
        self._refuse_postfix()
        if self._peek.kind != "op":
            return left
        op = self._next().text
        right = self._primary()
        self._refuse_postfix()
        if self._peek.kind == "op":
            raise self._error("chained comparisons are not supported; use AND")
        return _Compare(op, left, right)

    def _refuse_postfix(self) -> None:
        # What may follow an operand in IoT SQL but not here: a clearer error than "expected FROM".
        if self._peek.kind == "ident" and self._peek.text.upper() in _UNSUPPORTED_KEYWORDS:
            raise self._error(f"{self._peek.text.upper()} is not supported by the local rules engine")
        if self._peek.kind == "punct" and self._peek.text == "*":
            raise self._error("arithmetic is not supported")

    def _primary(self) -> _Expr:
        token = self._next()
        if token.kind == "string":
            return _Literal(token.text[1:-1])
        if token.kind == "number":
            is_int = not any(c in token.text for c in ".eE")
            return _Literal(int(token.text) if is_int else float(token.text))
        if token.kind == "punct" and token.text == "(":
            inner = self._expr()
            self._expect_punct(")")
            return inner
        if token.kind == "punct" and token.text == "*":
            raise self._error("'*' is only supported as a whole SELECT item", token)
        if token.kind != "ident":
            raise self._error("expected a value", token)
        word = token.text.upper()
        if word in {"TRUE", "FALSE", "NULL"}:
            return _Literal({"TRUE": True, "FALSE": False, "NULL": None}[word])
        self._refuse_keyword(token)
        if self._peek.kind == "punct" and self._peek.text == "(":
            return self._call(token)
        return self._attribute(token)

    def _attribute(self, first: _Token) -> _Attribute:
        path = [first.text]
        while self._accept_punct("."):
            if self._peek.kind == "punct" and self._peek.text == "*":
                raise self._error("'attribute.*' is not supported")
            path.append(self._identifier())
        return _Attribute(tuple(path))

    def _call(self, name_token: _Token) -> _Call:
        name = name_token.text.lower()
        if name not in _FUNCTIONS:
            raise self._error(
                f"function {name_token.text}() is not supported (supported: {', '.join(_FUNCTIONS)})", name_token
            )
        self._expect_punct("(")
        if name == "encode":
            return self._encode_call(name_token)
        args: list[int] = []
        if not self._accept_punct(")"):
            args.append(self._int_argument())
            while self._accept_punct(","):
                args.append(self._int_argument())
            self._expect_punct(")")
        if name in {"timestamp", "clientid"} and args:
            raise self._error(f"{name}() takes no arguments", name_token)
        if name == "topic" and (len(args) > 1 or (args and args[0] < 1)):
            raise self._error("topic() takes no argument or one level number >= 1 (1-based)", name_token)
        return _Call(name, tuple(args))

    def _encode_call(self, name_token: _Token) -> _Call:
        # Only the form AWS documents for binary payloads: encode(*, 'base64').
        self._expect_punct("*")
        self._expect_punct(",")
        encoding = self._next()
        if encoding.kind != "string" or encoding.text[1:-1] != "base64":
            raise self._error("encode() supports only encode(*, 'base64')", encoding)
        self._expect_punct(")")
        return _Call("encode", ())

    def _int_argument(self) -> int:
        token = self._next()
        if token.kind != "number" or not token.text.lstrip("-").isdigit():
            raise self._error("function arguments must be integer literals here", token)
        return int(token.text)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    topic: str
    now_ms: int
    client_id: str | None
    document: Any  # parsed payload, or UNDEFINED when the rule does not read it
    payload: bytes = b""  # the raw payload, for encode(*, 'base64')


_ORDERINGS: Final[dict[str, Callable[[Decimal, Decimal], bool]]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_decimal(value: Any) -> Decimal | None:
    if _is_number(value):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _to_bool(value: Any) -> bool | _UndefinedType:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return UNDEFINED


def _equal(left: Any, right: Any) -> bool | _UndefinedType:
    if isinstance(left, _UndefinedType) or isinstance(right, _UndefinedType):
        return UNDEFINED
    if _is_number(left) and _is_number(right):
        return Decimal(str(left)) == Decimal(str(right))
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _compare(op: str, left: Any, right: Any) -> bool | _UndefinedType:
    if op in {"=", "<>"}:
        equal = _equal(left, right)
        if isinstance(equal, _UndefinedType):
            return UNDEFINED
        return equal if op == "=" else not equal
    left_number, right_number = _to_decimal(left), _to_decimal(right)
    if left_number is None or right_number is None:
        return UNDEFINED
    return _ORDERINGS[op](left_number, right_number)


def _logic(op: str, left: Any, right: Any) -> bool | _UndefinedType:
    left_bool, right_bool = _to_bool(left), _to_bool(right)
    if isinstance(left_bool, _UndefinedType) or isinstance(right_bool, _UndefinedType):
        return UNDEFINED
    return (left_bool and right_bool) if op == "AND" else (left_bool or right_bool)


def _call(call: _Call, ctx: _Context) -> Any:
    if call.name == "encode":
        return base64.b64encode(ctx.payload).decode("ascii")
    if call.name == "timestamp":
        return ctx.now_ms
    if call.name == "clientid":
        return UNDEFINED if ctx.client_id is None else ctx.client_id
    if not call.args:
        return ctx.topic
    levels = ctx.topic.split("/")
    return levels[call.args[0] - 1] if call.args[0] <= len(levels) else UNDEFINED


def _attribute(attribute: _Attribute, ctx: _Context) -> Any:
    current = ctx.document
    for key in attribute.path:
        if not isinstance(current, dict) or key not in current:
            return UNDEFINED
        current = current[key]
    return current


def _evaluate(expr: _Expr, ctx: _Context) -> Any:
    match expr:
        case _Literal(value):
            return value
        case _Attribute():
            return _attribute(expr, ctx)
        case _Call():
            return _call(expr, ctx)
        case _Not(operand):
            value = _to_bool(_evaluate(operand, ctx))
            return value if isinstance(value, _UndefinedType) else not value
        case _Logic(op, left, right):
            return _logic(op, _evaluate(left, ctx), _evaluate(right, ctx))
        case _Compare(op, left, right):
            return _compare(op, _evaluate(left, ctx), _evaluate(right, ctx))
    raise AssertionError(f"unknown expression {expr!r}")  # pragma: no cover


def _reads_payload(expr: _Expr | None) -> bool:
    match expr:
        case _Attribute():
            return True
        case _Not(operand):
            return _reads_payload(operand)
        case _Logic(_, left, right) | _Compare(_, left, right):
            return _reads_payload(left) or _reads_payload(right)
    return False


def _refuse_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class TopicRule:
    """One IoT topic rule's SQL: which topics it takes and what it sends to its action."""

    def __init__(self, sql: str) -> None:
        self.sql: Final = sql
        self._statement = _Parser(sql).parse()
        self._has_star = any(isinstance(item, _Star) for item in self._statement.items)
        self._reads_payload = (
            self._has_star
            or any(isinstance(item, _Field) and _reads_payload(item.expr) for item in self._statement.items)
            or _reads_payload(self._statement.where)
        )

    @property
    def topic_filter(self) -> str:
        """The FROM topic filter, to subscribe with."""
        return self._statement.topic_filter

    def matches(self, topic: str) -> bool:
        """True when a message on ``topic`` reaches this rule (FROM only; WHERE needs the payload)."""
        return topic_matches(self._statement.topic_filter, topic)

    def apply(self, topic: str, payload: bytes, now_ms: int, client_id: str | None = None) -> dict[str, Any] | None:
        """The object the rule sends to its action, or None when FROM or WHERE drops the message.

        Raises `RulePayloadError` when the rule reads the payload and it is not JSON (or, for
        ``*``, not a JSON object): on AWS such a message goes to the rule's error action.
        """
        if not self.matches(topic):
            return None
        ctx = _Context(topic, now_ms, client_id, self._parse_payload(payload), payload)
        where = self._statement.where
        if where is not None and _to_bool(_evaluate(where, ctx)) is not True:
            return None
        output: dict[str, Any] = {}
        for item in self._statement.items:
            if isinstance(item, _Star):
                output.update(ctx.document)
                continue
            value = _evaluate(item.expr, ctx)
            if value is UNDEFINED:
                output.pop(item.alias, None)
            else:
                output[item.alias] = value
        return output

    def _parse_payload(self, payload: bytes) -> Any:
        if not self._reads_payload:
            return UNDEFINED
        try:
            document = json.loads(payload.decode("utf-8"), parse_constant=_refuse_json_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise RulePayloadError(f"payload is not valid JSON: {type(exc).__name__}") from exc
        if self._has_star and not isinstance(document, dict):
            raise RulePayloadError(f"payload is JSON {type(document).__name__}, not an object: cannot SELECT *")
        return document

    def __repr__(self) -> str:
        return f"TopicRule({self.sql!r})"


# --------------------------------------------------------------------------------------------
# Bridge: broker -> rules -> callables
# --------------------------------------------------------------------------------------------

OutputCallback = Callable[[str, dict[str, Any]], None]
ErrorCallback = Callable[[str, dict[str, Any]], None]
_RULE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_]{1,128}$")


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """Counts since start, summed over rules: received = outputs + filtered + errors."""

    received: int = 0
    outputs: int = 0
    filtered: int = 0
    errors: int = 0


class IotRulesBridge:
    """Subscribes to a local broker and applies topic rules, as IoT Core's rules engine does.

    Each rule gets its own MQTT client, so a message matching several rules (or overlapping
    filters) is evaluated once per rule. ``on_output(rule_name, output)`` stands in for the
    rule's action; when it raises, or when the payload cannot be evaluated, ``on_error``
    receives an object shaped like IoT Core's error-action payload (ruleName, topic,
    cloudwatchTraceId, clientId when known, base64OriginalPayload, failures). Callbacks run
    on paho's network threads (one per rule).

    MQTT 3.1.1 does not tell subscribers who published, so ``clientid()`` is Undefined unless
    ``client_id_topic_level`` names the topic level that holds it: dxops's device policy makes
    the client id equal the thing name, which is level 3 of ``dxops/devices/<thing>/readings``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        rules: Mapping[str, str | TopicRule],
        on_output: OutputCallback,
        on_error: ErrorCallback | None = None,
        *,
        clock: Callable[[], int] = _epoch_ms,
        client_id_topic_level: int | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not rules:
            raise ValueError("at least one rule is needed")
        bad_names = [name for name in rules if not _RULE_NAME_RE.match(name)]
        if bad_names:
            raise ValueError(f"IoT rule names are [A-Za-z0-9_]{{1,128}}: {bad_names}")
        self._host = host
        self._port = port
        self._rules = {name: rule if isinstance(rule, TopicRule) else TopicRule(rule) for name, rule in rules.items()}
        self._on_output = on_output
        self._on_error = on_error
        self._clock = clock
        self._client_id_level = client_id_topic_level
        self._timeout = timeout
        self._clients: dict[str, mqtt.Client] = {}
        self._subscribed: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stats = BridgeStats()

    @property
    def rules(self) -> Mapping[str, TopicRule]:
        return dict(self._rules)

    @property
    def stats(self) -> BridgeStats:
        with self._lock:
            return self._stats

    def start(self) -> IotRulesBridge:
        """Connect and subscribe every rule; returns once the broker has acknowledged them all."""
        if self._clients:
            raise RuntimeError("bridge already started")
        try:
            for name, rule in self._rules.items():
                self._start_rule(name, rule)
            for name, event in self._subscribed.items():
                if not event.wait(self._timeout):
                    raise TimeoutError(
                        f"rule {name}: no SUBACK for {self._rules[name].topic_filter!r} from "
                        f"{self._host}:{self._port} within {self._timeout}s"
                    )
        except BaseException:
            self.stop()
            raise
        return self

    def _start_rule(self, name: str, rule: TopicRule) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"dxops-rules-{name}-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        subscribed = threading.Event()
        self._subscribed[name] = subscribed
        self._clients[name] = client

        def on_connect(
            client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Properties | None
        ) -> None:
            # Subscribing here (not once after connect) restores the subscription on reconnect.
            if not reason.is_failure:
                client.subscribe(rule.topic_filter, qos=1)

        def on_subscribe(
            _client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _props: Properties | None
        ) -> None:
            if reasons and not any(reason.is_failure for reason in reasons):
                subscribed.set()
            else:
                logger.error("rule %s: the broker refused the subscription to %r", name, rule.topic_filter)

        def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            self._handle(name, rule, message.topic, bytes(message.payload))

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(self._host, self._port, keepalive=30)
        client.loop_start()

    def stop(self) -> None:
        """Disconnect every rule's client; safe to call twice."""
        clients, self._clients = self._clients, {}
        self._subscribed = {}
        for client in clients.values():
            client.disconnect()
            client.loop_stop()

    def __enter__(self) -> IotRulesBridge:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _client_id_for(self, topic: str) -> str | None:
        if self._client_id_level is None:
            return None
        levels = topic.split("/")
        return levels[self._client_id_level - 1] if self._client_id_level <= len(levels) else None

    def _count(self, outcome: str) -> None:
        # One outcome per received message, counted together so that stats always reconcile.
        with self._lock:
            stats = self._stats
            self._stats = replace(stats, received=stats.received + 1, **{outcome: getattr(stats, outcome) + 1})

    def _handle(self, name: str, rule: TopicRule, topic: str, payload: bytes) -> None:
        # Never let an exception escape: it would stop paho's network thread for this rule.
        delivery = _Delivery(name, topic, self._client_id_for(topic), payload)
        try:
            output = rule.apply(topic, payload, self._clock(), delivery.client_id)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, RulePayloadError) else f"{type(exc).__name__} in the rules engine"
            self._fail(delivery, "RuleEvaluation", name, reason)
            return
        if output is None:
            self._count("filtered")
            return
        try:
            self._on_output(name, output)
        except Exception as exc:
            resource = getattr(self._on_output, "__name__", "on_output")
            self._fail(delivery, "LocalAction", resource, f"{type(exc).__name__}: {exc}")
            return
        self._count("outputs")

    def _fail(self, delivery: _Delivery, action: str, resource: str, message: str) -> None:
        self._count("errors")
        error: dict[str, Any] = {
            "ruleName": delivery.rule_name,
            "topic": delivery.topic,
            "cloudwatchTraceId": str(uuid.uuid4()),
            "base64OriginalPayload": binascii.b2a_base64(delivery.payload, newline=False).decode("ascii"),
            "failures": [{"failedAction": action, "failedResource": resource, "errorMessage": message}],
        }
        if delivery.client_id is not None:
            error["clientId"] = delivery.client_id
        if self._on_error is None:
            # The payload and the error text may hold patient data: log only where it failed.
            logger.warning("rule %s: %s failed for a message on %s", delivery.rule_name, action, delivery.topic)
            return
        try:
            self._on_error(delivery.rule_name, error)
        except Exception:
            logger.exception("rule %s: on_error raised for a message on %s", delivery.rule_name, delivery.topic)


@dataclass(frozen=True, slots=True)
class _Delivery:
    rule_name: str
    topic: str
    client_id: str | None
    payload: bytes


def decode_original_payload(error: Mapping[str, Any]) -> bytes:
    """The message an error-action object carries, as the publisher sent it."""
    return base64.b64decode(error["base64OriginalPayload"])
