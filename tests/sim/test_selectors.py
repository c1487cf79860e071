"""Label and field selectors on list and watch: what they match, and the 400 messages for bad ones."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.sim.selectors import SelectorError, parse_field_selector, parse_label_selector

LABELS = {"app": "lcm", "tier": "worker", "zone": "a", "count": "5", "example.com/owner": "ops", "empty": ""}
NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
BAD_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("   ", True),
        ("app=lcm", True),
        ("app==lcm", True),
        ("app=other", False),
        ("app!=other", True),
        ("app!=lcm", False),
        ("missing!=x", True),
        ("missing=x", False),
        ("tier in (worker,control)", True),
        ("tier in (control)", False),
        ("missing in (a)", False),
        ("tier notin (control)", True),
        ("tier notin (worker)", False),
        ("missing notin (a)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("count>4", True),
        ("count>5", False),
        ("count<6", True),
        ("app>1", False),
        ("missing<9", False),
        ("app=lcm,tier=worker", True),
        ("app=lcm,tier=control", False),
        ("app=lcm, tier in (worker), !missing", True),
        ("example.com/owner=ops", True),
        ("empty=", True),
        ("empty in ()", True),
        ("empty in (,x)", True),
        ("app in (in)", False),
        ("in=x", False),
        ("zone notin (b,c),app", True),
    ],
)
def test_label_selectors_match_as_kubernetes(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
        ("a in ((", "unable to parse requirement: found '(', expected: ',', ')' or identifier"),
        ("a=(", "unable to parse requirement: found '(', expected: identifier"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("-a=v", f'unable to parse requirement: <nil>: Invalid value: "-a": {NAME_PART}'),
        ("a=$x", f'unable to parse requirement: values[0][a]: Invalid value: "$x": {BAD_VALUE}'),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, "
            "the value must be an integer",
        ),
        ("/a=b", 'unable to parse requirement: <nil>: Invalid value: "/a": prefix part must be non-empty'),
        (
            f"a={'v' * 64}",
            f'unable to parse requirement: values[0][a]: Invalid value: "{"v" * 64}": '
            "must be no more than 63 characters",
        ),
    ],
)
def test_bad_label_selectors_fail_with_the_api_servers_words(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as raised:
        parse_label_selector(selector)
    assert str(raised.value) == message


def test_a_label_key_with_two_slashes_is_not_a_qualified_name() -> None:
    with pytest.raises(SelectorError, match="a qualified name must consist of alphanumeric characters"):
        parse_label_selector("a/b/c=d")


def test_a_prefix_must_be_a_dns_subdomain() -> None:
    with pytest.raises(SelectorError, match="prefix part a lowercase RFC 1123 subdomain"):
        parse_label_selector("Example.com/a=b")


def test_requirements_are_sorted_by_key_and_values_deduplicated() -> None:
    selector = parse_label_selector("z in (b,a,b),a")
    assert [(r.key, r.operator, r.values) for r in selector.requirements] == [
        ("a", "exists", ()),
        ("z", "in", ("a", "b")),
    ]


SECRET: dict[str, Any] = {
    "metadata": {"name": "join-token", "namespace": "demo"},
    "type": "Opaque",
    "spec": {"ready": True, "count": 3},
}
SUPPORTED = ("metadata.name", "metadata.namespace", "type", "spec.ready", "spec.count", "spec.missing")


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("metadata.name=join-token", True),
        ("metadata.name==join-token", True),
        ("metadata.name!=join-token", False),
        ("metadata.name=other", False),
        ("metadata.name=join-token,metadata.namespace=demo", True),
        ("metadata.name=join-token,metadata.namespace=other", False),
        ("type=Opaque", True),
        ("spec.ready=true", True),
        ("spec.count=3", True),
        ("spec.missing=", True),
        ("spec.missing!=", False),
        ("metadata.name=join-token,", True),
    ],
)
def test_field_selectors_match_dotted_paths(selector: str, matches: bool) -> None:
    assert parse_field_selector(selector, SUPPORTED).matches(SECRET) is matches


def test_field_selector_values_may_escape_commas_and_equals() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d", SUPPORTED)
    assert selector.matches({"metadata": {"name": r"a,b=c\d"}})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("spec.other=1", "field label not supported: spec.other"),
        ("metadata.name=a,spec.b=1,spec.a=2", "field label not supported: spec.a"),
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
        (r"metadata.name=a\x", r"invalid field selector: invalid escape sequence: \x"),
        ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_bad_field_selectors_fail_with_the_api_servers_words(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as raised:
        parse_field_selector(selector, SUPPORTED)
    assert str(raised.value) == message
