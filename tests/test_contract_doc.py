"""docs/contract.md and the rules `argoplug check` prints cannot drift apart.

Every clause a rule cites names a section that exists, under the anchor its link uses, and that section
lists the rule; every printed link resolves; every `docs/contract.md §N.M` the code cites exists.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from argoplug.conformance.command import check_command
from argoplug.conformance.contract import CONTRACT_DOC, RULE_CLAUSES, Clause, rule_clause
from argoplug.conformance.driver import run_checks
from argoplug.conformance.replies import REPLY_RULES
from argoplug.conformance.rules import Exchange, Limits, judge_start, judge_token_user
from argoplug.testing import LiveServer
from sample_plugins import greet

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / CONTRACT_DOC

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
_ANCHOR = re.compile(r'^<a id="([^"]+)"></a>$')
_SECTION_REF = re.compile(r"§(\d+(?:\.\d+)?)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


class Doc:
    """docs/contract.md, parsed: its sections by number (heading, body), its anchors (explicit, GitHub's)."""

    def __init__(self, text: str) -> None:
        self.sections: dict[
            str, tuple[str, str]
        ] = {}  # number -> (heading text, body up to the next heading)
        self.explicit: dict[str, str] = {}  # <a id> -> the number of the heading right after it
        self.slugs: set[str] = set()
        lines = text.splitlines()
        fenced = False
        pending: str | None = None
        current: str | None = None
        bodies: dict[str, list[str]] = {}
        for line in lines:
            if line.startswith("```"):
                fenced = not fenced
            if fenced:
                if current:
                    bodies[current].append(line)
                continue
            anchor = _ANCHOR.match(line)
            if anchor:
                assert pending is None, f"two anchors in a row: {line}"
                pending = anchor.group(1)
                continue
            heading = _HEADING.match(line)
            if heading:
                title = heading.group(2)
                slug = github_slug(title)
                assert slug not in self.slugs, f"two headings give the anchor {slug!r}"
                self.slugs.add(slug)
                number = _NUMBER.match(title)
                current = number.group(1) if number else None
                if current:
                    assert current not in self.sections, f"section {current} twice"
                    self.sections[current] = (title, "")
                    bodies[current] = []
                if pending is not None:
                    assert current, f"anchor {pending!r} is not right above a numbered heading"
                    assert pending not in self.explicit, f"anchor {pending!r} twice"
                    self.explicit[pending] = current
                    pending = None
                continue
            assert pending is None or not line.strip(), f"anchor {pending!r} is not right above a heading"
            if current:
                bodies[current].append(line)
        assert pending is None and not fenced
        self.sections = {n: (title, "\n".join(bodies[n])) for n, (title, _) in self.sections.items()}

    @property
    def anchors(self) -> set[str]:
        return self.slugs | set(self.explicit)


@pytest.fixture(scope="module")
def doc() -> Doc:
    return Doc(DOC.read_text(encoding="utf-8"))


def test_the_anchors_are_github_style_and_name_their_section(doc: Doc) -> None:
    for anchor, number in doc.explicit.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", anchor), anchor
        assert anchor.startswith(number.replace(".", "-") + "-"), (anchor, number)
        assert anchor not in doc.slugs, f"{anchor} is also a heading's own anchor"


def test_every_link_inside_the_doc_resolves(doc: Doc) -> None:
    text = DOC.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(#([^)]+)\)", text)
    assert targets
    assert sorted(set(targets) - doc.anchors) == []
    # Reference-style links all have a definition.
    defined = set(re.findall(r"^\[([^\]]+)\]: https://", text, re.M))
    used = set(re.findall(r"\]\[([^\]]+)\]", text)) | {
        name for name in re.findall(r"\[([^\]]+)\](?![(\[:])", text) if name in defined
    }
    assert sorted(used - defined) == []
    assert sorted(defined - used) == []


@pytest.mark.parametrize("rule", sorted(RULE_CLAUSES))
def test_each_rule_cites_a_section_that_exists_and_lists_it(doc: Doc, rule: str) -> None:
    clause = RULE_CLAUSES[rule]
    assert clause.anchor in doc.explicit, f"{rule}: no anchor {clause.anchor!r} in {CONTRACT_DOC}"
    assert doc.explicit[clause.anchor] == clause.section, f"{rule}: {clause.anchor} is not §{clause.section}"
    assert clause.link == f"docs/contract.md#{clause.anchor}"
    for cited in _SECTION_REF.findall(clause.words):
        assert cited in doc.sections, f"{rule}: its words cite §{cited}, which {CONTRACT_DOC} lacks"
    body = doc.sections[clause.section][1]
    checked = re.search(r"Checked by `argoplug check`: (.+?)(?:\n\n|\Z)", body, re.S)
    assert checked, f"§{clause.section} does not say which argoplug check rules apply it"
    named = re.findall(r"`([a-z:<>-]+)`", checked.group(1))
    shown = "vector:<name>" if rule == "vector" else rule
    assert shown in named, f"§{clause.section} does not list {shown} (it lists {named})"


def test_every_rule_a_section_lists_cites_that_section(doc: Doc) -> None:
    for number, (_, body) in doc.sections.items():
        checked = re.search(r"Checked by `argoplug check`: (.+?)(?:\n\n|\Z)", body, re.S)
        for name in re.findall(r"`([a-z:<>-]+)`", checked.group(1)) if checked else []:
            assert rule_clause(name).section == number, f"§{number} lists {name}, which cites elsewhere"


def test_every_verdict_carries_its_rules_clause() -> None:
    with LiveServer([greet]) as server:
        verdicts = run_checks(server.url, plugin_key="greet", token=server.token, seed=3)
    verdicts += [
        judge_token_user(None),
        judge_token_user({"runAsUser": 1000, "runAsGroup": 1000}),
        judge_start(Exchange("first call", None, error="connection refused"), 20.0, Limits()),
    ]
    assert {rule_clause(v.rule) for v in verdicts} == set(RULE_CLAUSES.values())
    for verdict in verdicts:
        assert isinstance(verdict.contract, Clause)
        assert verdict.contract == rule_clause(verdict.rule), verdict.rule
    assert set(REPLY_RULES.values()) <= set(RULE_CLAUSES.values())


def test_the_report_links_each_rule_to_its_section(doc: Doc) -> None:
    out = io.StringIO()
    with LiveServer([greet]) as server:
        code = check_command(
            server.url,
            token=server.token,
            seed=4,
            console=Console(file=out, width=100, soft_wrap=True, color_system=None),
        )
    assert code == 0, out.getvalue()
    lines = out.getvalue().splitlines()
    rules = [line.split()[1].rstrip(":") for line in lines if line.split()[:1] in (["PASS"], ["WARN"])]
    cited = [re.fullmatch(r"     contract §(\S+?): .+ \(docs/contract\.md#(\S+)\)", line) for line in lines]
    found = [(m.group(1), m.group(2)) for m in cited if m]
    assert len(rules) == len(found) > 10, out.getvalue()
    for rule, (section, anchor) in zip(rules, found, strict=True):
        assert doc.explicit.get(anchor) == section, f"{rule}: §{section} #{anchor}"
        assert rule_clause(rule).anchor == anchor


def test_what_the_code_and_readme_cite_exists(doc: Doc) -> None:
    files = [ROOT / "README.md", *sorted((ROOT / "src" / "argoplug").rglob("*.py"))]
    seen = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "CONTRACT.md" not in text and "CONTRACT §" not in text, f"{path}: cites the old CONTRACT.md"
        for sections in re.findall(r"docs/contract\.md(?: §[0-9.§–-]+)+", text):
            for cited in _SECTION_REF.findall(sections):
                seen += 1
                assert cited in doc.sections, f"{path.name} cites docs/contract.md §{cited}"
        for anchor in re.findall(r"docs/contract\.md#([a-z0-9-]+)", text):
            seen += 1
            assert anchor in doc.anchors, f"{path.name} links to docs/contract.md#{anchor}"
    assert seen > 5
