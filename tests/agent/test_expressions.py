"""Argo's expressions: `{{=...}}` (expr-lang), `when` (govaluate) and `depends`, on Argo's examples."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argoplug.agent.expressions import (
    ExpressionError,
    TaskResult,
    depends_tasks,
    env_from_scope,
    evaluate,
    evaluate_depends,
    evaluate_when,
    expand,
)
from argoplug.agent.expressions.functions import FunctionError, go_format, go_json, jsonpath

SCOPE = {
    "inputs.parameters.message": "hello world",
    "inputs.parameters.count": "42",
    "inputs.parameters.ratio": "3.14",
    "inputs.parameters.a": "15",
    "inputs.parameters.b": "25",
    "inputs.parameters.empty": "",
    "inputs.parameters.status": "ready",
    "inputs.parameters.my-int-param": "7",
    "inputs.parameters.my-float-param": "2.5",
    "inputs.parameters.my-string-param": "  padded  ",
    "inputs.parameters.json": '{"some": {"path": "found", "list": [1, 2.5, "x"]}, "n": 3}',
    "steps.step-a.outputs.result": "heads",
    "steps.step-a.outputs.parameters.p": "pv",
    "steps.step-a.outputs.parameters": '[{"p": "pv"}]',
    "tasks.b.outputs.result": "tails",
    "workflow.name": "wf-abc",
    "workflow.status": "Succeeded",
    "item": '{"key": "k1", "n": "2"}',
    "item.key": "k1",
    "item.n": "2",
}
ENV = env_from_scope(SCOPE)


# `docs/variables.md` (Expression examples) and `util/expr/env/env_test.go` (the migration guide's examples).
ARGO_EXAMPLES = [
    ("[1, 2]", [1, 2]),
    ("filter([1, 2], { # > 1})", [2]),
    ("map([1, 2], { # * 2 })", [2, 4]),
    ("asInt(inputs.parameters['my-int-param'])", 7),
    ("asFloat(inputs.parameters['my-float-param'])", 2.5),
    ("string(1)", "1"),
    ("toJson([1, 2])", "[1,2]"),
    ("jsonpath(inputs.parameters.json, '$.some.path')", "found"),
    ("sprig.trim(inputs.parameters['my-string-param'])", "padded"),
    ("string(inputs.parameters.count)", "42"),
    ("lower('HELLO World')", "hello world"),
    ("upper(inputs.parameters.message)", "HELLO WORLD"),
    ("repeat('ab', 2)", "abab"),
    ("split('foo bar baz', ' ')", ["foo", "bar", "baz"]),
    ("join(['a', 'b', 'c'], '-')", "a-b-c"),
    ("hasPrefix(inputs.parameters.message, 'hello')", True),
    ("hasSuffix(inputs.parameters.message, 'world')", True),
    ("replace('foo bar baz', 'bar', 'BAR')", "foo BAR baz"),
    ('trim("  hello  ")', "hello"),
    ('trim("__hello__", "_")', "hello"),
    ("indexOf(inputs.parameters.message, 'world') >= 0", True),
    ("indexOf(inputs.parameters.message, 'xyz') == -1", True),
    ("int(inputs.parameters.a) + int(inputs.parameters.b)", 40),
    ("int(inputs.parameters.count)", 42),
    ("float(inputs.parameters.ratio)", 3.14),
    ("max(int(inputs.parameters.a), int(inputs.parameters.b))", 25),
    ("min(int(inputs.parameters.a), int(inputs.parameters.b))", 15),
    ("abs(-5)", 5),
    ("ceil(3.2)", 4.0),
    ("floor(3.8)", 3.0),
    ("round(3.6)", 4.0),
    ("[1, 2, 3, 4, 5][1:3]", [2, 3]),
    ("len(['a', 'b', 'c'])", 3),
    ("reverse(['a', 'b', 'c'])", ["c", "b", "a"]),
    ("inputs.parameters.status == 'ready' && int(inputs.parameters.count) > 0", True),
    ("inputs.parameters.empty == '' || inputs.parameters.force == 'true'", True),
    ("inputs.parameters.status != 'pending'", True),
    ("int(inputs.parameters.a) < int(inputs.parameters.b)", True),
    ("inputs.parameters.empty == '' ? 'default' : inputs.parameters.empty", "default"),
    ("type(42)", "int"),
    ('type("hello")', "string"),
    ('toJSON({"name": "John"})', '{\n  "name": "John"\n}'),
    ('fromJSON("{\\"name\\": \\"John\\"}")', {"name": "John"}),
    ('toBase64("Hello World")', "SGVsbG8gV29ybGQ="),
    ('fromBase64("SGVsbG8gV29ybGQ=")', "Hello World"),
    ("get(['a', 'b'], 1)", "b"),
    ("get(inputs.parameters, 'count')", "42"),
    ("workflow.name", "wf-abc"),
]


@pytest.mark.parametrize(("expression", "expected"), ARGO_EXAMPLES)
def test_argo_documented_examples(expression: str, expected: Any) -> None:
    assert evaluate(expression, ENV) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # names, members, indexes: hyphenated names go through [...]
        ("inputs.parameters.message", "hello world"),
        ("inputs.parameters['my-int-param']", "7"),
        ('steps["step-a"].outputs.result', "heads"),
        ("steps['step-a'].outputs.parameters.p", "pv"),
        ("tasks.b.outputs.result == 'tails'", True),
        ("item.key", "k1"),
        ("inputs.parameters.missing", None),
        ("inputs.parameters?.missing?.deeper", None),
        ("inputs.parameters.missing ?? 'fallback'", "fallback"),
        ("inputs.parameters.missing.deeper ?? 'fallback'", "fallback"),
        ("inputs.parameters.count ?? 'fallback'", "42"),
        ("[10, 20, 30][-1]", 30),
        ("[10, 20, 30][:2]", [10, 20]),
        ("[10, 20, 30][5:]", []),
        ("'argo'[1:3]", "rg"),
        # numbers: int stays int, / is always a float, % is Go's (sign of the dividend)
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 / 4", 2.5),
        ("10 / 5", 2.0),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("2 ** 10", 1024.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("-2 + 5", 3),
        ("1.5 + 1", 2.5),
        ("0x1F + 0b11 + 0o7 + 1_000", 1041),
        (".5 + 1e2", 100.5),
        ("1 == 1.0", True),
        ("'1' == 1", False),
        ("nil == nil", True),
        ("[1, 'a'] == [1, 'a']", True),
        # strings
        ("'a' + \"b\" + `c\\n`", "abc\\n"),
        ("'tab\\there' + '\\u00e9\\x41\\101'", "tab\there\u00e9AA"),
        ("'abc' < 'abd'", True),
        ("'hello' contains 'ell'", True),
        ("'hello' startsWith 'he' and 'hello' endsWith 'lo'", True),
        ("'a-1' matches '^[a-z]-[0-9]$'", True),
        ("'a' not in ['b', 'c']", True),
        ("'key' in item", True),
        ("not ('x' not matches 'x')", True),
        # logic and conditions
        ("true && false || true", True),
        ("true and not false", True),
        ("!true", False),
        ("false && (1 / 0 > 1)", False),
        ("true || undefined_function()", True),
        ("1 < 2 < 3", True),
        ("1 < 3 < 2", False),
        ("false ? 1 : true ? 2 : 3", 2),
        ("1..3", [1, 2, 3]),
        ("{'a': 1, b: [true, nil], 'c-d': {}}", {"a": 1, "b": [True, None], "c-d": {}}),
        ("[1, 2,]", [1, 2]),
        # predicates
        ("all([1, 2], {# > 0})", True),
        ("any([1, 2], # > 1)", True),
        ("none([1, 2], # > 2)", True),
        ("one([1, 2], # > 1)", True),
        ("count([1, 2, 3], # >= 2)", 2),
        ("find([1, 2, 3], # > 1)", 2),
        ("findIndex([1, 2, 3], # > 5)", -1),
        ("findLast([1, 2, 3], # < 3)", 2),
        ("findLastIndex([1, 2, 3], # < 3)", 1),
        ("map([{'n': 1}, {'n': 2}], .n * 10)", [10, 20]),
        ("map(['a', 'b'], # + string(#index))", ["a0", "b1"]),
        ("filter(fromJSON(inputs.parameters.json).some.list, type(#) == 'float')", [1.0, 2.5]),
        ("[1, 2] | map(# + 1)", [2, 3]),
        ("'  x ' | trim()", "x"),
        # functions that convert
        ("string(2.5)", "2.5"),
        ("string(1000000.0)", "1e+06"),
        ("string(true)", "true"),
        ("string(nil)", "<nil>"),
        ("string([1, 'a'])", "[1 a]"),
        ("string({'b': 1, 'a': 2})", "map[a:2 b:1]"),
        ("int(3.9)", 3),
        ("int(-3.9)", -3),
        ("int('-12')", -12),
        ("float('1e3')", 1000.0),
        ("len('héllo')", 5),
        ("len({'a': 1})", 1),
        ("keys({'b': 1, 'a': 2})", ["a", "b"]),
        ("values({'b': 1, 'a': 2})", [2, 1]),
        ("first([])", None),
        ("last([1, 2])", 2),
        ("lastIndexOf('abcabc', 'b')", 4),
        ("split('a,b,c', ',', 2)", ["a", "b,c"]),
        ("split('abc', '')", ["a", "b", "c"]),
        ("sum([1, 2.5])", 3.5),
        ("max([3, 9, 4])", 9),
        ("round(-2.5)", -3.0),
        ("round(2.5)", 3.0),
        ("trimPrefix('v1.2', 'v')", "1.2"),
        ("toJson({'b': [1, 2.0, 'x<y'], 'a': nil})", '{"a":null,"b":[1,2,"x\\u003cy"]}'),
        ("toJSON([])", "[]"),
        ("fromJSON('[1, {\"a\": true}]')", [1.0, {"a": True}]),
        ("jsonpath(inputs.parameters.json, '$.n') + 1", 4.0),
        ("jsonpath(inputs.parameters.json, '$.some.list[*]')", [1.0, 2.5, "x"]),
        ("get({'a': 1}, 'b')", None),
        ("get([1], 5)", None),
    ],
)
def test_evaluate(expression: str, expected: Any) -> None:
    result = evaluate(expression, ENV)
    assert result == expected
    assert type(result) is type(expected)  # 2 is not 2.0: Go tells int from float64


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sprig.trim('  a  ')", "a"),
        ("sprig.trimAll('$', '$5.00$')", "5.00"),
        ("sprig.trimPrefix('v', 'v1')", "1"),
        ("sprig.trimSuffix('.yaml', 'a.yaml')", "a"),
        ("sprig.upper(workflow.name)", "WF-ABC"),
        ("sprig.lower('ABC')", "abc"),
        ("sprig.title('hello big world')", "Hello Big World"),
        ("sprig.replace(' ', '-', 'a b c')", "a-b-c"),
        ("sprig.contains('cat', 'catch')", True),
        ("sprig.hasPrefix('ca', 'cat')", True),
        ("sprig.hasSuffix('at', 'cat')", True),
        ("sprig.repeat(3, 'ab')", "ababab"),
        ("sprig.substr(1, 3, 'hello')", "el"),
        ("sprig.substr(2, 99, 'hello')", "llo"),
        ("sprig.trunc(3, 'hello')", "hel"),
        ("sprig.trunc(-3, 'hello')", "llo"),
        ("sprig.quote('a', 1, nil)", '"a" "1"'),
        ("sprig.squote('a')", "'a'"),
        ("sprig.toString(12)", "12"),
        ("sprig.join('-', ['a', 1, true])", "a-1-true"),
        ("sprig.splitList(',', 'a,b')", ["a", "b"]),
        ("sprig.default('d', '')", "d"),
        ("sprig.default('d', 'set')", "set"),
        ("sprig.default('d')", "d"),
        ("sprig.empty(0)", True),
        ("sprig.empty('x')", False),
        ("sprig.ternary('yes', 'no', 1 > 0)", "yes"),
        ("sprig.int('12')", 12),
        ("sprig.int('12.0')", 12),
        ("sprig.int('not a number')", 0),
        ("sprig.atoi('0x10')", 16),
        ("sprig.float64('1.5')", 1.5),
        ("sprig.float64('x')", 0.0),
        ("sprig.add(1, '2', 3.9)", 6),
        ("sprig.sub(10, '3')", 7),
        ("sprig.b64enc('hi')", "aGk="),
        ("sprig.b64dec('aGk=')", "hi"),
        (
            "sprig.sha256sum('hello world')",
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
        ),
        ("sprig.toJson({'a': 1})", '{"a":1}'),
        ("sprig.toPrettyJson([1])", "[\n  1\n]"),
        ("sprig.fromJson('{\"a\": 1}').a", 1.0),
        ("sprig.fromJson('not json')", None),
        ("sprig.regexMatch('^[0-9]+$', '123')", True),
        ("sprig.regexFind('[0-9]+', 'ab12cd34')", "12"),
        ("sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', '${1}W')", "-W-xxW-"),
        (
            "sprig.regexReplaceAll('(?P<first>\\\\w+) (\\\\w+)', 'hello world', '$2 $first $$')",
            "world hello $",
        ),
        ("sprig.list(1, 'a')", [1, "a"]),
        ("sprig.has(2, [1, 2])", True),
    ],
)
def test_sprig(expression: str, expected: Any) -> None:
    assert evaluate(expression, ENV) == expected


@pytest.mark.parametrize(
    ("expression", "position", "problem"),
    [
        ("a +", 3, "expected a value, found the end"),
        ("(1 + 2", 6, "expected ')', found the end"),
        ("1 2", 2, "expected an operator or the end, found 2"),
        ("'unclosed", 0, "a string is not closed"),
        ("1 @ 2", 2, "unexpected character '@'"),
        ("12abc", 0, "bad number syntax"),
        ("'\\q'", 1, "invalid escape '\\q'"),
        ("foo", 0, "unknown name 'foo'"),
        ("inputs.parameters.count + 1", 24, "invalid operation: string + int"),
        ("inputz.parameters", 0, "unknown name 'inputz' (did you mean 'inputs'?)"),
        ("foo(1)", 0, "unknown function 'foo'"),
        ("fromJson('{}')", 0, "unknown function 'fromJson' (did you mean 'fromJSON'?)"),
        ("now()", 0, "unsupported: now() is not implemented by argoplug's local agent"),
        ("sprig.semverCompare('>1', '2')", 0, "unsupported: sprig.semverCompare()"),
        ("inputs.parameters.upper()", 18, "unsupported: the method call '.upper()'"),
        ("trim()", 0, "invalid number of arguments for trim (expected 1 to 2, got 0)"),
        ("upper('a', 'b')", 0, "invalid number of arguments for upper (expected 1, got 2)"),
        ("upper(1)", 0, "upper(): cannot use int as argument (type string) to call upper"),
        ("sprig.trim(1)", 0, "cannot use int as argument (type string) to call sprig.trim"),
        ("asInt('3.5')", 0, "asInt(): invalid operation: int(3.5)"),
        ("asFloat('x')", 0, "invalid operation: float(x)"),
        ("len(1)", 0, "invalid argument for len (type int)"),
        ("fromJSON('{bad')", 0, "invalid JSON"),
        ("jsonpath('{}', '$.a')", 0, "jsonpath '$.a': key 'a' not found"),
        ("jsonpath('[1]', '$[3]')", 0, "index 3 out of range"),
        ("jsonpath('[1]', '$[?(@ > 1)]')", 0, "unsupported: jsonpath"),
        ("[1][3]", 3, "index out of range: 3 (array length is 1)"),
        ("nil.a", 3, "cannot fetch a from <nil>"),
        ("workflow.name.first", 13, "cannot fetch first from string"),
        ("[1].a", 3, "cannot fetch a from []interface {}"),
        ("1 && true", 2, "invalid operation: && on a int, not a bool"),
        ("!'a'", 0, "invalid operation: !string"),
        ("'a' ? 1 : 2", 4, "the condition before '?' is a string, not a bool"),
        ("1 % 0", 2, "integer divide by zero"),
        ("1.5 % 1", 4, "invalid operation: float64 % int"),
        ("'a' < 1", 4, "invalid operation: string < int"),
        ("'a' in 'abc'", 4, "invalid operation: string in string"),
        ("filter(1, # > 0)", 0, "filter(): cannot iterate over a int"),
        ("filter([1], # + 1)", 12, "filter(): the predicate returned a int, not a bool"),
        ("filter([1])", 0, "filter() takes an array and a predicate"),
        ("map([1], #other)", 9, "unknown pointer '#other'"),
        ("#", 0, "expected a value, found '#'"),
        ("repeat('a', -1)", 0, "negative Repeat count"),
        ("a not b", 6, "expected 'in', 'matches', 'contains', 'startsWith' or 'endsWith' after 'not'"),
        ("'[' matches '['", 4, "invalid regular expression"),
        ("0x", 0, "bad number syntax"),
        ("'\\U0011ffff'", 1, "invalid escape"),
        ("int(1e999)", 0, "int(): cannot convert float infinity to integer"),
        ("repeat('a', 100000000)", 0, "a repeat count of 100000000 is too large"),
        ("1..100000000", 1, "the range is too long"),
    ],
)
def test_evaluate_errors(expression: str, position: int, problem: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, ENV)
    assert problem in caught.value.problem
    assert caught.value.position == position
    assert caught.value.expression == expression
    assert str(caught.value).startswith(f"expression '{expression}' at character {position + 1}: ")


def test_env_from_scope_nests_keys_as_argo_expands_them() -> None:
    env = env_from_scope({"a.b": "1", "a.c.d": "2", "a": "3", "ab": "4", "abb": "5", "a-b": "6"})
    assert env == {"a": {"b": "1", "c": {"d": "2"}}, "ab": "4", "abb": "5", "a-b": "6"}  # util/expand's test
    assert ENV["item"] == {"key": "k1", "n": "2"}  # `item` gives way to `item.key`
    assert ENV["steps"]["step-a"]["outputs"]["parameters"] == {"p": "pv"}
    assert ENV["inputs"]["parameters"]["my-int-param"] == "7"
    assert env_from_scope({"item": "plain"}) == {"item": "plain"}
    assert env_from_scope({}) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{=inputs.parameters.message}}", "hello world"),
        ("n={{=asInt(inputs.parameters.count) + 1}}!", "n=43!"),
        ("{{=asInt(inputs.parameters.count) / 4}}", "10.5"),
        ("{{=10 / 5}}", "2"),
        ("{{=1e21 * 1.0}} {{=0.0000001}} {{=100000000.0}}", "1e+21 1e-7 100000000"),
        ("{{=1 == 1}}/{{=false}}", "true/false"),
        ("{{=[1, 'a', nil]}}", '[1,"a",null]'),
        ('{{=fromJSON(\'{"b": 1, "a": "<&>"}\')}}', '{"a":"\\u003c\\u0026\\u003e","b":1}'),
        ("{{=toJson(['x'])}}", '["x"]'),
        (
            "{{=steps['step-a'].outputs.result}} and {{tasks.b.outputs.result}}",
            "heads and {{tasks.b.outputs.result}}",
        ),
        ("{{ =not-an-expression }} {{=workflow.name}}", "{{ =not-an-expression }} wf-abc"),
        ("no tags at all", "no tags at all"),
        ("{{=item.key}}-{{=item.n}}", "k1-2"),
        ("{{=workflow.status == 'Succeeded' ? 'SUCCESSFUL' : 'FAILED'}}", "SUCCESSFUL"),
        ("{{=jsonpath(inputs.parameters.json, '$.some.list')}}", '[1,2.5,"x"]'),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, SCOPE) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{=nope}}", "unknown name 'nope'"),
        ("{{=inputs.parameters.missing}}", "the value is nil"),
        ("{{=1 / 0}}", "json: unsupported value: +Inf"),
        ("{{=toJson({'a': {'b': 1}})}}", "found the end"),  # the tag ends at the first }}
    ],
)
def test_expand_errors(text: str, problem: str) -> None:
    with pytest.raises(ExpressionError, match=problem.replace("+", r"\+")):
        expand(text, SCOPE)


def test_expand_leaves_what_it_cannot_resolve_when_asked() -> None:
    text = "{{=retries + 1}} {{=inputs.parameters.missing}} {{=asInt(inputs.parameters.count)}}"
    assert expand(text, SCOPE, allow_unresolved=True) == "{{=retries + 1}} {{=inputs.parameters.missing}} 42"


# `when`: examples/coinflip.yaml, conditionals.yaml and the forms users write after substitution.
@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("heads == heads", True),  # coinflip: "{{steps.flip-coin.outputs.result}} == heads"
        ("tails == heads", False),
        ('"heads" == "heads"', True),
        ("'it is' == \"it is\"", True),
        ("5 > 3", True),
        ("10 < 9", False),
        ("3 == 3.0", True),
        ("1 + 1 == 2", True),
        ("2 ** 3 == 8", True),
        ("7 % 4 == 3", True),
        ("tails != heads && 1 == 1", True),
        ("Succeeded == Succeeded || Failed == Succeeded", True),
        ("true", True),
        ("false", False),
        ("", True),
        ("!true", False),
        ("!(1 == 2)", True),
        ("(a == a) && (b != c)", True),
        ("b > a", True),  # strings compare as strings
        ("True == true", False),  # a word, not a bool
        ("5 == '5'", False),
        ("a + 1 == a1", True),  # govaluate joins a string with anything
        ("a in (a, b)", True),
        ("c IN (a, b)", False),
        ("abc =~ '^a'", True),
        ("abc !~ '^a'", False),
        ("[my-var] == 'my-var'", True),  # govaluate's escaped variable
        ("'a\\'b' == 'a\\'b'", True),
        ("'a' == \"a\"", True),
        ("1 == 1 ? true : false", True),
        ("x == x", True),
    ],
)
def test_evaluate_when(condition: str, expected: bool) -> None:
    assert evaluate_when(condition) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            "flip-coin == flip-coin",
            "Failed to evaluate 'when' expression 'flip-coin == flip-coin' at character 5: "
            "Value 'flip' cannot be used with the modifier '-', it is not a number",
        ),
        (
            "http://x == y",
            "Invalid 'when' expression 'http://x == y' at character 5: Invalid token: '://' "
            '(hint: try wrapping the affected expression in quotes ("))',
        ),
        ("foo(1)", "Invalid 'when' expression 'foo(1)' at character 1: Undefined function foo"),
        ("a.b == c", "Unable to access unexported field 'b' in token 'a.b'"),
        ("a. == c", "Hanging accessor on token 'a.'"),
        (
            "a.B == c",
            "Failed to evaluate 'when' expression 'a.B == c' at character 1: No parameter 'a' found.",
        ),
        ("1.2.3 == 1", "Unable to parse numeric value '1.2.3' to float64"),
        ("'unclosed == x", "Unclosed string literal"),
        ('"a\'b" == x', "Unclosed string literal"),  # a string ends at either quote
        ("[unclosed == x", "Unclosed parameter bracket"),
        ("(1 == 1", "Invalid 'when' expression '(1 == 1': Unbalanced parenthesis"),
        ("hello world == hello world", "expected an operator or the end, found 'world'"),
        ("x ==", "expected a value, found the end"),
        ("_x == y", "Invalid token: '_'"),
        ("1 & 1", "unsupported: the bitwise operator '&'"),
        ("5", "Expected boolean evaluation for '5'. Got 5"),
        ("heads", "Expected boolean evaluation for 'heads'. Got heads"),
        ("1 == 2 ? x", "Expected boolean evaluation for '1 == 2 ? x'. Got <nil>"),
        ("a && true", "Value 'a' cannot be used with the logical operator '&&', it is not a bool"),
        ("x > 1", "Value 'x' cannot be used with the comparator '>', it is not a number"),
        ("-a == 1", "Value 'a' cannot be used with the prefix '-'"),
        ("a in b", "Value 'b' cannot be used with the comparator 'in', it is not an array"),
    ],
)
def test_evaluate_when_errors(condition: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_when(condition)
    assert message in str(caught.value)


TASKS = {
    "A": TaskResult("Succeeded"),
    "B": TaskResult("Failed"),
    "C": TaskResult("Skipped"),
    "D": TaskResult("Error"),
    "E": TaskResult("Omitted"),
    "task": TaskResult("Succeeded"),
    "task-1": TaskResult("Succeeded", children_phases=("Failed", "Succeeded")),
    "task-2": TaskResult("Failed", children_phases=("Failed", "Failed")),
    "task-3": TaskResult("Succeeded"),
    "empty-loop": TaskResult("Succeeded", children_phases=()),
    "daemon": TaskResult("Running", daemoned=True),
    "tolerant": TaskResult("Failed", continue_on_failed=True),
    "shrugs": TaskResult("Error", continue_on_error=True),
    "running": TaskResult("Running"),
    "pending-daemon": TaskResult("Pending", daemoned=True),
}


# docs/enhanced-depends-logic.md, and the results of each phase.
@pytest.mark.parametrize(
    ("depends", "expected"),
    [
        ("task || task-2.Failed", True),
        ("(task.Succeeded || task.Skipped || task.Daemoned) || task-2.Failed", True),
        ("(task-2.Succeeded || task-2.Skipped) && !task-3.Failed", False),
        ("task-1.AnySucceeded || task-2.AllFailed", True),
        ("task-1.AllFailed", False),
        ("task-2.AllFailed", True),
        ("empty-loop.AllFailed || empty-loop.AnySucceeded", False),
        ("A && C", True),  # dependencies: [A, C]
        ("A && B", False),
        ("A.Succeeded && (B.Failed || C.Skipped)", True),
        ("B.Failed && D.Errored && E.Omitted && C.Skipped", True),
        ("D", False),
        ("E", False),
        ("!B.Succeeded", True),
        ("daemon", True),
        ("daemon.Daemoned && !daemon.Succeeded", True),
        ("tolerant", True),  # continueOn: {failed: true}
        ("shrugs", True),  # continueOn: {error: true}
        ("B", False),
    ],
)
def test_evaluate_depends(depends: str, expected: bool) -> None:
    assert evaluate_depends(depends, TASKS) is expected


@pytest.mark.parametrize(
    "depends",
    ["running", "A && running", "running.Succeeded || A", "pending-daemon", "not-there || A", "A and B"],
)
def test_evaluate_depends_waits_for_every_referenced_task(depends: str) -> None:
    assert evaluate_depends(depends, TASKS) is None


def test_depends_tasks() -> None:
    assert depends_tasks("(task-2.Succeeded || task-2.Skipped) && !task-3.Failed") == ["task-2", "task-3"]
    assert depends_tasks("A && B.AnySucceeded || A.Failed") == ["A", "B"]
    assert depends_tasks("A and B") == ["A", "and", "B"]  # Argo reads every word as a task name
    assert depends_tasks("A.succeeded") == ["A", "succeeded"]
    assert depends_tasks("") == []
    with pytest.raises(ExpressionError, match="task result 'Done' for task 'A' is invalid"):
        depends_tasks("A.Done || B")


def test_evaluate_depends_errors() -> None:
    with pytest.raises(ExpressionError, match="task result 'Finished' for task 'A' is invalid"):
        evaluate_depends("A.Finished", TASKS)
    with pytest.raises(ExpressionError) as caught:
        evaluate_depends("A.Succeeded A.Failed", TASKS)
    assert str(caught.value) == (
        "unable to evaluate depends 'A.Succeeded A.Failed' at character 13: "
        "expected an operator or the end, found 'A'"
    )


@pytest.mark.parametrize(
    ("value", "formatted", "encoded"),
    [
        (1, "1", "1"),
        (1.0, "1", "1"),
        (1.5, "1.5", "1.5"),
        (-0.25, "-0.25", "-0.25"),
        (123456.0, "123456", "123456"),
        (1234567.0, "1.234567e+06", "1234567"),
        (1e20, "1e+20", "100000000000000000000"),
        (1e21, "1e+21", "1e+21"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "1e-05", "0.00001"),
        (1e-7, "1e-07", "1e-7"),
        (True, "true", "true"),
        (None, "<nil>", "null"),
        ('a"b', 'a"b', '"a\\"b"'),
        ([1, "x", [2.5]], "[1 x [2.5]]", '[1,"x",[2.5]]'),
        ({"b": {}, "a": []}, "map[a:[] b:map[]]", '{"a":[],"b":{}}'),
    ],
)
def test_go_formatting(value: Any, formatted: str, encoded: str) -> None:
    assert go_format(value) == formatted
    assert go_json(value) == encoded


def test_go_json_rejects_what_go_does() -> None:
    for value in (math.nan, math.inf, [-math.inf]):
        with pytest.raises(FunctionError, match="json: unsupported value"):
            go_json(value)
    assert (
        go_json({"a": [1, {"b": None}]}, indent=True)
        == '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ]\n}'
    )


# github.com/evilmonkeyinc/jsonpath, as Argo's util/expr/env/env_test.go (TestJsonPath) uses it.
STORE = json.dumps(
    {
        "store": {
            "book": [
                {
                    "category": "reference",
                    "author": "Nigel Rees",
                    "title": "Sayings of the Century",
                    "price": 8.95,
                },
                {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword of Honour", "price": 12.99},
            ],
            "bicycle": {"color": "red", "price": 19.95},
        },
        "expensive": 10,
    }
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.store.bicycle.color", "red"),
        ("$.store.book[1].price", 12.99),
        ("$.store.book[-1].author", "Evelyn Waugh"),
        ("$['store']['bicycle']['color']", "red"),
        ('$["store"].bicycle', {"color": "red", "price": 19.95}),
        ("$.store.book[*].author", ["Nigel Rees", "Evelyn Waugh"]),
        ("$.store.book[0,1].price", [8.95, 12.99]),
        ("$.store.book[:1].category", ["reference"]),
        ("$..price", [19.95, 8.95, 12.99]),
        ("$..author", ["Nigel Rees", "Evelyn Waugh"]),
        ("$.store.*.color", ["red"]),
        ("$.expensive", 10.0),
    ],
)
def test_jsonpath(path: str, expected: Any) -> None:
    assert jsonpath(STORE, path) == expected


def test_jsonpath_whole_book() -> None:
    assert jsonpath(STORE, "$.store.book[0]")["title"] == "Sayings of the Century"
    for path in ("$.invalid.path", "$.store.book[2]", "store.book", "$.store.book[x]", "$.store!"):
        with pytest.raises(FunctionError, match="jsonpath"):
            jsonpath(STORE, path)
    with pytest.raises(FunctionError, match="invalid JSON"):
        jsonpath('{"key": invalid}', "$.key")


# Properties.
INTEGERS = st.integers(min_value=-(10**6), max_value=10**6)


@given(INTEGERS, INTEGERS, INTEGERS)
def test_integer_arithmetic_matches_go(a: int, b: int, c: int) -> None:
    assert evaluate(f"{a} + {b} * {c} - ({a} - {b})", {}) == a + b * c - (a - b)
    if b:
        remainder = evaluate(f"{a} % {b}", {})
        assert remainder == int(math.fmod(a, b))  # Go truncates toward zero
        assert evaluate(f"{a} / {b}", {}) == pytest.approx(a / b)


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(TEXT)
def test_string_literals_round_trip(text: str) -> None:
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert evaluate(quoted, {}) == text
    assert evaluate(f"x == {quoted}", {"x": text}) is True
    assert expand("{{=x}}", {"x": text}) == text


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_go_json_is_json_of_the_same_value(value: Any) -> None:
    # Go writes a float below 1e21 in full (3e16 is 30000000000000000), so read numbers back as floats
    assert json.loads(go_json(value), parse_int=float) == value
    assert json.loads(go_json(value, indent=True), parse_int=float) == value
    assert evaluate("fromJSON(toJson(v)) == v", {"v": value}) is True


# Names of scope entries: expr's word operators and literals (`in`, `or`, `true`, ...) are not names there.
NAMES = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True).filter(
    lambda name: name not in {"not", "in", "and", "or", "matches", "contains", "true", "false", "nil", "let"}
)


@given(st.dictionaries(st.lists(NAMES, min_size=1, max_size=3).map(".".join), TEXT, max_size=8))
def test_env_from_scope_keeps_every_most_specific_key(scope: dict[str, str]) -> None:
    env = env_from_scope(scope)
    for key, value in scope.items():
        if not any(other.startswith(key + ".") for other in scope):
            node: Any = env
            for part in key.split("."):
                node = node[part]
            assert node == value
            assert expand("{{=" + key + "}}", scope) == value


@given(st.sampled_from(["Succeeded", "Failed", "Error", "Skipped", "Omitted"]), st.booleans(), st.booleans())
def test_a_bare_dependency_is_its_expansion(phase: str, on_failed: bool, on_error: bool) -> None:
    tasks = {"x-1": TaskResult(phase, continue_on_failed=on_failed, continue_on_error=on_error)}
    expected = (
        phase in ("Succeeded", "Skipped")
        or (phase == "Failed" and on_failed)
        or (phase == "Error" and on_error)
    )
    assert evaluate_depends("x-1", tasks) is expected
    assert evaluate_depends("!x-1", tasks) is not expected


PIECES = [
    *["(", ")", "[", "]", "{", "}", ",", ":", ".", "?.", "??", "?", "!", "#", "+", "-", "*", "/", "%", "**"],
    *["==", "<", "in", "not", "matches", "&&", "||", "..", "|", "x", "a.b", "nil", "true", "0x", "1e999"],
    *["1.5", "-1", "''", "'x'", "'$.a'", "'{}'", "'['", "'\\u12'", "#index", "trim(", "sprig.trim("],
    *["sprig.substr(", "filter(", "map(", "int(", "split(", "jsonpath(j,", "fromJSON(", "toJson(", "get("],
]


@given(st.lists(st.sampled_from(PIECES), max_size=12).map(" ".join))
def test_any_text_is_a_value_or_an_expression_error(text: str) -> None:
    env = env_from_scope({"x": "hi", "a.b": "1", "j": '{"a": [1]}'})
    for run in (
        lambda: evaluate(text, env),
        lambda: evaluate_when(text),
        lambda: expand("{{=" + text + "}}", {}),
    ):
        with contextlib.suppress(ExpressionError):
            run()
