"""Local IoT topic rules: the SQL subset dxops uses, evaluated as AWS IoT Core does."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from localcloud.iot_rules import (
    RulePayloadError,
    RuleSqlError,
    TopicRule,
    topic_matches,
    validate_topic_filter,
)

DEVICE_RULE = "SELECT *, topic(3) AS device_id, timestamp() AS received_at FROM 'dxops/devices/+/readings'"
TOPIC = "dxops/devices/dev-1/readings"
NOW_MS = 1_764_237_600_000


def apply(sql: str, payload: Any, topic: str = TOPIC, client_id: str | None = None) -> dict[str, Any] | None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return TopicRule(sql).apply(topic, raw, NOW_MS, client_id)


def test_device_rule_adds_device_id_from_topic_level_3_and_receive_time() -> None:
    payload = {"source": "site-a", "patient_id": "MRN-1", "readings": [{"timestamp": "t", "measurements": []}]}
    assert apply(DEVICE_RULE, payload) == {**payload, "device_id": "dev-1", "received_at": NOW_MS}


def test_device_cannot_spoof_its_id_or_receive_time() -> None:
    output = apply(DEVICE_RULE, {"device_id": "someone-else", "received_at": 0, "x": 1})
    assert output == {"device_id": "dev-1", "received_at": NOW_MS, "x": 1}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("topic(1)", "dxops"),
        ("topic(2)", "devices"),
        ("topic(3)", "dev-1"),
        ("topic(4)", "readings"),
        ("topic()", TOPIC),
    ],
)
def test_topic_is_one_based(expression: str, expected: str) -> None:
    assert apply(f"SELECT {expression} AS t FROM 'dxops/#'", {}) == {"t": expected}


def test_topic_beyond_the_last_level_is_undefined_and_left_out() -> None:
    assert apply("SELECT topic(5) AS t, 1 AS one FROM 'dxops/#'", {}) == {"one": 1}
    # Undefined also removes a key that * copied from the payload.
    assert apply("SELECT *, topic(9) AS t FROM 'dxops/#'", {"t": "x", "k": 2}) == {"k": 2}


def test_timestamp_and_clientid() -> None:
    sql = "SELECT timestamp() AS ts, clientid() AS cid FROM 'dxops/#'"
    assert apply(sql, {}, client_id="dev-1") == {"ts": NOW_MS, "cid": "dev-1"}
    assert apply(sql, {}) == {"ts": NOW_MS}, "an unknown client id is Undefined"


def test_plain_attributes_keep_their_last_segment_as_key() -> None:
    sql = "SELECT a.b.c, d, e.f AS renamed, missing, g.missing FROM 'x/y'"
    payload = {"a": {"b": {"c": [1, 2]}}, "d": None, "e": {"f": "v"}, "g": 3}
    assert apply(sql, payload, topic="x/y") == {"c": [1, 2], "d": None, "renamed": "v"}


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("dxops/devices/+/readings", "dxops/devices/dev-1/readings", True),
        ("dxops/devices/+/readings", "dxops/devices/dev-1/status", False),
        ("dxops/devices/+/readings", "dxops/devices/readings", False),
        ("dxops/devices/+/readings", "dxops/devices/a/b/readings", False),
        ("dxops/devices/+/readings", "dxops/devices//readings", True),  # an empty level is a level
        ("dxops/#", "dxops", True),  # '#' includes the parent
        ("dxops/#", "dxops/devices/dev-1/readings", True),
        ("dxops/#", "other/devices", False),
        ("#", "dxops/x", True),
        ("#", "$aws/things/dev-1/shadow/update", False),  # wildcards do not match reserved topics
        ("+/things/#", "$aws/things/dev-1", False),
        ("$aws/things/+/shadow/#", "$aws/things/dev-1/shadow/update", True),
        ("a/b", "a/b", True),
        ("a/b", "a/B", False),  # topics are case-sensitive
        ("a/+", "a/+", False),  # a wildcard is not a topic name
    ],
)
def test_topic_filter_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected
    assert TopicRule(f"SELECT * FROM '{topic_filter}'").matches(topic) is expected


def test_a_non_matching_topic_gives_none_without_reading_the_payload() -> None:
    assert apply(DEVICE_RULE, b"not json", topic="dxops/devices/dev-1/status") is None


@pytest.mark.parametrize(
    ("where", "payload", "selected"),
    [
        ("temp > 30", {"temp": 31}, True),
        ("temp > 30", {"temp": 30}, False),
        ("temp >= 30", {"temp": 30}, True),
        ("temp <= 30.5", {"temp": 30.5}, True),
        ("temp < 30", {"temp": 29.99}, True),
        ("temp > 30", {"temp": "31"}, True),  # strings that are numbers compare as decimals
        ("temp > 30", {"temp": "hot"}, False),  # otherwise Undefined
        ("temp > 30", {}, False),  # a missing attribute is Undefined, never true
        ("temp = 10", {"temp": 10.0}, True),
        ("temp = '10'", {"temp": 10}, False),  # = of different types is false
        ("temp <> '10'", {"temp": 10}, True),
        ("color = 'red'", {"color": "red"}, True),
        ("color <> 'red'", {"color": "blue"}, True),
        ("color <> 'red'", {}, False),  # Undefined <> x is Undefined
        ("a.b = true", {"a": {"b": True}}, True),
        ("flag", {"flag": True}, True),
        ("flag", {"flag": "TRUE"}, True),  # boolean strings are converted
        ("NOT flag", {"flag": False}, True),
        ("NOT flag", {}, False),
        ("temp > 30 AND color = 'red'", {"temp": 40, "color": "red"}, True),
        ("temp > 30 AND color = 'red'", {"temp": 40, "color": "blue"}, False),
        ("temp > 30 OR color = 'red'", {"temp": 20, "color": "red"}, True),
        ("temp > 30 OR color = 'red' AND n = 1", {"temp": 40, "color": "x", "n": 2}, True),  # AND binds tighter
        ("(temp > 30 OR color = 'red') AND n = 1", {"temp": 40, "color": "x", "n": 2}, False),
        ("topic(3) = 'dev-1'", {}, True),
        ("topic(3) = 'dev-2'", {}, False),
        ("x = null", {"x": None}, True),
    ],
)
def test_where(where: str, payload: dict[str, Any], selected: bool) -> None:
    output = apply(f"SELECT *, topic(3) AS device_id FROM 'dxops/devices/+/readings' WHERE {where}", payload)
    assert (output is not None) is selected
    if selected:
        assert output == {**payload, "device_id": "dev-1"}


def test_comparisons_can_be_selected() -> None:
    assert apply("SELECT temp > 30 AS hot, NOT ok AS bad FROM 'a'", {"temp": 31, "ok": True}, topic="a") == {
        "hot": True,
        "bad": False,
    }


def test_keywords_are_case_insensitive() -> None:
    assert apply("select *, TOPIC(3) as d from 'dxops/devices/+/readings' where x > 1", {"x": 2}) == {
        "x": 2,
        "d": "dev-1",
    }


@pytest.mark.parametrize("payload", [b"not json", b'{"a": 1', b"\xff\xfe", b'{"a": NaN}', b""])
def test_a_payload_that_is_not_json_is_an_error_when_the_rule_reads_it(payload: bytes) -> None:
    with pytest.raises(RulePayloadError, match="not valid JSON"):
        apply(DEVICE_RULE, payload)


def test_select_star_needs_a_json_object() -> None:
    with pytest.raises(RulePayloadError, match="not an object"):
        apply(DEVICE_RULE, b"[1, 2]")
    # Attribute access on a non-object is just Undefined.
    assert apply("SELECT a FROM 'dxops/#'", b"[1]") == {}


def test_a_rule_that_does_not_read_the_payload_accepts_any_bytes() -> None:
    assert apply("SELECT topic(3) AS d FROM 'dxops/devices/+/readings'", b"\x00\x01binary") == {"d": "dev-1"}


def test_the_rule_exposes_its_filter_and_sql() -> None:
    rule = TopicRule(DEVICE_RULE)
    assert rule.topic_filter == "dxops/devices/+/readings"
    assert rule.sql == DEVICE_RULE


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT a FROM 'x' WHERE a IN (1, 2)", "IN is not supported"),
        ("SELECT a FROM 'x' WHERE a LIKE 'b%'", "LIKE is not supported"),
        ("SELECT a FROM 'x' WHERE a IS NULL", "IS is not supported"),
        ("SELECT a FROM 'x' WHERE a BETWEEN 1 AND 2", "BETWEEN is not supported"),
        ("SELECT CASE a WHEN 1 THEN 2 END AS b FROM 'x'", "CASE is not supported"),
        ("SELECT a + 1 AS b FROM 'x'", "arithmetic is not supported"),
        ("SELECT a * 2 AS b FROM 'x'", "arithmetic is not supported"),
        ("SELECT * FROM 'x' WHERE * = 1", "only supported as a whole SELECT item"),
        ("SELECT a FROM 'x' WHERE a != 1", "use '<>'"),
        ("SELECT \"my-key\" FROM 'x'", "double-quoted identifiers"),
        ("SELECT a[0] AS b FROM 'x'", "array indexing"),
        ("SELECT a.* FROM 'x'", "'attribute.*' is not supported"),
        ("SELECT upper(a) AS b FROM 'x'", "function upper() is not supported"),
        ("SELECT topic(3) FROM 'x'", "needs 'AS name'"),
        ("SELECT topic(0) AS t FROM 'x'", "1-based"),
        ("SELECT topic(a) AS t FROM 'x'", "integer literals"),
        ("SELECT timestamp(1) AS t FROM 'x'", "takes no arguments"),
        ("SELECT * FROM x", "quoted topic filter"),
        ("SELECT * FROM 'x/#/y'", "'#' must be the whole last level"),
        ("SELECT * FROM 'x/a+'", "'+' must be a whole level"),
        ("SELECT * FROM ''", "non-empty"),
        ("SELECT * FROM 'x' ORDER BY a", "unexpected token"),
        ("SELECT * FROM 'x' WHERE 1 < a < 3", "chained comparisons"),
        ("SELECT * FROM 'x' WHERE", "expected a value"),
        ("SELECT FROM 'x'", "unexpected keyword"),
        ("SELECT * FROM 'x", "unterminated string"),
        ("SELECT * WHERE a = 1", "expected FROM"),
        ("SELECT VALUE a FROM 'x'", "expected FROM"),
        ("UPDATE x", "expected SELECT"),
    ],
)
def test_unsupported_or_invalid_sql_raises_a_clear_error(sql: str, message: str) -> None:
    with pytest.raises(RuleSqlError, match=re.escape(message)):
        TopicRule(sql)


@pytest.mark.parametrize("topic_filter", ["dxops/+/readings", "#", "+", "a/+/b/#", "/leading/slash"])
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)  # must not raise
    assert TopicRule(f"SELECT * FROM '{topic_filter}'").topic_filter == topic_filter


def test_encode_star_base64_passes_any_payload_through() -> None:
    import base64

    rule = TopicRule(
        "SELECT encode(*, 'base64') AS payload, topic(3) AS device_id, timestamp() AS received_at "
        "FROM 'dxops/devices/+/readings'"
    )
    for payload in (b'{"readings": []}', b"not json at all", b"\xff\x00"):
        out = rule.apply("dxops/devices/dev-1/readings", payload, now_ms=7)
        assert out == {"payload": base64.b64encode(payload).decode(), "device_id": "dev-1", "received_at": 7}


def test_encode_supports_only_the_base64_star_form() -> None:
    for sql in ("SELECT encode(a, 'base64') FROM 't'", "SELECT encode(*, 'hex') AS x FROM 't'"):
        with pytest.raises(RuleSqlError):
            TopicRule(sql)
