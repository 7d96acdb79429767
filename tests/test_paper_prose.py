"""Prose follows verdicts: every sentence of the report that states a finding carries its claim marker.

A finding is recognised two ways: the sentence quotes a claim's measured value
(``{{ <claim id>.value }}``, which must then carry that claim's ``[claim:<id>]``), or it uses a
verb of finding ("shows that", "matters", "reduces forgetting", ...). A sentence of either kind
without a marker is an unaudited result: the test names it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1] / "paper"
MARKER = re.compile(r"\[claim:([A-Za-z][A-Za-z0-9_-]*)\]")
VALUE = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_-]*)\.(?:value|verdict)\s*\}\}")
# Verbs and phrases that state a result, as a reader would take them (case-insensitive, whole words).
FINDING = re.compile(
    r"\b(shows? that|showed that|we find|we found|matters|reduces? (?:forgetting|interference)|"
    r"increases? (?:forgetting|average forgetting)|forgets? (?:less|more)|protects?|confirms?|"
    r"demonstrates?|outperforms?|is (?:supported|confirmed|refuted)|keeps? (?:clearly )?more)\b",
    re.IGNORECASE)
# What the paper says, or what was declared, is not our finding: such a sentence needs no marker.
ATTRIBUTION = re.compile(r"\b(?:the paper|it) (?:states|argues|says|claims|offers|supports)\b|\bis said to\b|"
                         r"\bwere declared\b", re.IGNORECASE)


def sentences(markdown: str) -> list[str]:
    """The prose sentences of a Markdown page: headings, figures, tables, code blocks and the italic
    preamble are left out; paragraphs are joined and split after '.', '!' or '?'."""
    kept, in_code = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.startswith(("#", "![", "|", "*A reproduction")):
            kept.append("")
            continue
        kept.append(line)
    paragraphs = [" ".join(p.split()) for p in "\n".join(kept).split("\n\n")]
    out = []
    for p in paragraphs:
        out += [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z*(])", p) if s.strip()]
    return out


def unmarked_findings(markdown: str) -> list[str]:
    """Sentences that state a finding without the marker of the claim behind it."""
    bad = []
    for sentence in sentences(markdown):
        marked = set(MARKER.findall(sentence))
        quoted = set(VALUE.findall(sentence))
        if quoted - marked or (FINDING.search(sentence) and not marked and not ATTRIBUTION.search(sentence)):
            bad.append(sentence)
    return bad


def test_the_checker_flags_an_unmarked_finding_and_accepts_a_marked_one():
    page = ("## 7\n\nThe ablation above shows that resetting them matters.\n\n"
            "Resetting changes it by {{ A5.value }} [claim:A5]. Averaging changes it by {{ A6.value }}.\n\n"
            "Shampoo forgets less than SGD [claim:C3a].\n\n![a figure that shows that x](f.png)\n\n"
            "The paper states that Shampoo forgets less.\n")
    assert unmarked_findings(page) == ["The ablation above shows that resetting them matters.",
                                       "Averaging changes it by {{ A6.value }}."]


@pytest.mark.parametrize("page", ["paper.md", "datasets.md"])
def test_every_finding_in_the_report_carries_its_claim_marker(page):
    assert unmarked_findings((PAPER / page).read_text()) == []
