"""The claims audit: evaluate every claim of paper/claims.yaml on the pipeline's outputs.

Why a module of its own: a claim in the paper is only as good as the number behind it, so each
claim names the rule and output that hold its evidence, a selector into that JSON, and a test with
a threshold written before the results were seen. This module turns that into a verdict.

**Intervals** (``optbias.stats``). Each case of a claim gets a Student-t 95% interval over seeds:

* of the mean of the per-seed values (``threshold``);
* of the per-seed paired differences a - b (``compare``, runs paired by seed: the seeds both
  finished, found in the ``seeds`` list nearest to the values, else by position), or Welch's
  interval of the difference of means when they cannot be paired (some runs missing);
* of the per-seed mean absolute difference of two runs (``distance``);
* of the per-seed margin ``d(a, b) - max(floor_a, floor_b)`` (``floor``: the distance between two
  optimizers against the distance between two batch orders of one optimizer).

A selected plain number (not a list over seeds, e.g. a fitted slope) is deterministic: it is tested
exactly (value op threshold). One seed has no interval: such a case is INCONCLUSIVE, and so is a
case that reads an entry whose ``learned`` is false (a model that did not learn forgets nothing,
which is not retention), unless the case reads that entry's learning accuracy, the very quantity
the flag is judged on (a plasticity claim).

**Verdicts.** A claim with k cases is

* SUPPORTED when every case's 95% interval lies on the claimed side of the threshold. This is an
  intersection-union test: the claim holds only if every case holds, and each case must pass on
  its own at 95%, so the chance of declaring a false claim supported stays at most 0.05 with no
  correction for k;
* NOT SUPPORTED when some case's interval at the Bonferroni level 1 - 0.05/k lies entirely on the
  other side (touching the threshold counts as the other side). That controls the chance of
  calling a true claim not supported at 0.05 across the k cases. Holm's step-down procedure would
  reject no fewer hypotheses, but its first step is Bonferroni's and the claim-level verdict
  needs one rejection only, so Holm would decide nothing differently here;
* INCONCLUSIVE otherwise. With k = 1 this is the plain rule on the 95% interval.

A claim carrying ``superseded_by`` is not evaluated nor counted: the audit lists it with its last
verdict, the claims that replace it (with their verdicts now) and the reason. A claim that is not
supported never makes the audit fail; a claim that points at a rule or an output that does not
exist, or at a value its output does not hold, does (``ClaimError``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..fileio import atomic_write_bytes, atomic_write_json
from ..stats import bonferroni_level, seed_stat, t_interval, welch_interval

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
LEVEL = 0.95  # every case's interval; NOT SUPPORTED uses bonferroni_level(LEVEL, k)
REQUIRED = ("id", "statement", "source", "rule", "output", "metric", "test", "figure")
TESTS = ("threshold", "compare", "distance", "equals", "floor")
OPS = ("<", ">")
REDUCERS = {"mean": np.mean, "max": np.max, "min": np.min}
SUPERSEDED = ("superseded_by", "reason", "last_verdict", "last_verdict_commit")
_TOKEN = re.compile(r"\[(\*|-?\d+|-?\d*:-?\d*)\]|([^.\[\]]+)")
_COMMIT = re.compile(r"[0-9a-f]{7,40}")
ONE_SEED = "one seed: no interval"
DETERMINISTIC = "deterministic: tested exactly"


class ClaimError(ValueError):
    """A claim cannot be evaluated: it names a missing rule, output or value, or is malformed."""


# --- loading and checking -------------------------------------------------------------------------

def _check_pairs(where: str, test: dict) -> None:
    pairs = test.get("pairs")
    if not pairs or not isinstance(pairs, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs):
        raise ClaimError(f"{where}: a {test['type']} test needs pairs: [[a, b], ...] (two optimizer names each)")


def _check_superseded_fields(where: str, claim: dict) -> None:
    """The fields of a superseded claim, in shape (``check_superseded`` checks what they name)."""
    present = [k for k in SUPERSEDED if k in claim]
    if not present:
        return
    missing = [k for k in SUPERSEDED if k not in claim]
    if missing:
        raise ClaimError(f"{where}: a superseded claim needs {', '.join(SUPERSEDED)}; missing {', '.join(missing)}")
    new = _listify(claim["superseded_by"])
    if not new or not all(isinstance(x, str) and x for x in new):
        raise ClaimError(f"{where}: superseded_by must be a claim id or a list of claim ids, got {claim['superseded_by']!r}")
    if claim["id"] in new:
        raise ClaimError(f"{where}: a claim cannot supersede itself")
    if not isinstance(claim["reason"], str) or not claim["reason"].strip():
        raise ClaimError(f"{where}: reason must say why the claim was superseded (a non-empty string)")
    if claim["last_verdict"] not in VERDICTS:
        raise ClaimError(f"{where}: last_verdict must be one of {', '.join(VERDICTS)}, got {claim['last_verdict']!r}")
    if not _COMMIT.fullmatch(str(claim["last_verdict_commit"])):
        raise ClaimError(f"{where}: last_verdict_commit must be a commit hash (7 to 40 lowercase hex digits), "
                         f"got {claim['last_verdict_commit']!r}")


def is_superseded(claim: Mapping) -> bool:
    """Whether a claim carries ``superseded_by``: it is listed by the audit, not evaluated."""
    return "superseded_by" in claim


def check_superseded(claims: Sequence[dict], where: str = "claims") -> None:
    """Every ``superseded_by`` names a claim of ``claims`` that is itself active (not superseded:
    point a chain at its last claim). Raises ``ClaimError`` naming the claim to fix."""
    by_id = {c["id"]: c for c in claims}
    for claim in claims:
        if not is_superseded(claim):
            continue
        for new in _listify(claim["superseded_by"]):
            if new not in by_id:
                raise ClaimError(f"{where}: claim {claim['id']} is superseded_by {new!r}, which no loaded claims file defines")
            if is_superseded(by_id[new]):
                raise ClaimError(f"{where}: claim {claim['id']} is superseded_by {new}, which is itself superseded; "
                                 "name the claim that replaces both")


def load_claims(path: str | Path, check_references: bool = True) -> list[dict]:
    """Read and check a claims file; the error names the claim and the field to fix.

    Besides the fields every claim needs (``REQUIRED``), a ``floor`` test needs ``pairs`` and
    ``metric.floor``, and a superseded claim needs ``superseded_by``, ``reason``, ``last_verdict``
    (one of ``VERDICTS``) and ``last_verdict_commit``. With ``check_references``, every
    ``superseded_by`` must name an active claim of this file (``load_claims_files`` checks across
    all its files instead). Raises ``ClaimError``.
    """
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list):
        raise ClaimError(f"{path}: expected a mapping with a list under 'claims'")
    claims, seen = doc["claims"], set()
    for i, claim in enumerate(claims):
        where = f"{path}: claim #{i + 1} ({claim.get('id', 'no id') if isinstance(claim, dict) else claim!r})"
        if not isinstance(claim, dict):
            raise ClaimError(f"{where}: expected a mapping")
        missing = [k for k in REQUIRED if k not in claim]
        if missing:
            raise ClaimError(f"{where}: missing field(s) {', '.join(missing)}; every claim needs {', '.join(REQUIRED)}")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(claim["id"])):
            raise ClaimError(f"{where}: id must be a letter followed by letters, digits, '_' or '-'")
        if claim["id"] in seen:
            raise ClaimError(f"{where}: duplicate id {claim['id']!r}")
        seen.add(claim["id"])
        test = claim["test"]
        if not isinstance(test, dict) or test.get("type") not in TESTS:
            raise ClaimError(f"{where}: test.type must be one of {', '.join(TESTS)}")
        if test["type"] != "equals" and (test.get("op") not in OPS or isinstance(test.get("threshold"), bool)
                                         or not isinstance(test.get("threshold"), (int, float))):
            raise ClaimError(f"{where}: a {test['type']} test needs op ('<' or '>') and a numeric threshold")
        if test["type"] == "compare" and not ("a" in test and "b" in test):
            raise ClaimError(f"{where}: a compare test needs a (optimizer) and b (one or a list)")
        if test["type"] in ("distance", "floor"):
            _check_pairs(where, test)
        if test["type"] == "equals" and "value" not in test:
            raise ClaimError(f"{where}: an equals test needs value")
        if not isinstance(claim["metric"], dict) or "select" not in claim["metric"]:
            raise ClaimError(f"{where}: metric needs select (a path into the output JSON)")
        if test["type"] == "floor" and not isinstance(claim["metric"].get("floor"), str):
            raise ClaimError(f"{where}: a floor test needs metric.floor, the path of one optimizer's batch-order "
                             "floor with {optimizer} in it (e.g. \"{benchmark}.floors.{optimizer}.function.per_seed\")")
        if claim["metric"].get("reduce", "mean") not in REDUCERS:
            raise ClaimError(f"{where}: metric.reduce must be one of {', '.join(REDUCERS)}")
        _check_superseded_fields(where, claim)
    if check_references:
        check_superseded(claims, str(path))
    return claims


def _paths(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    """One claims file or several, as a list (``paper.claims`` is either)."""
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def load_claims_files(paths: str | Path | Sequence[str | Path]) -> list[dict]:
    """``load_claims`` of one file or of several, in order (the default paper reads
    ``paper/claims.yaml``; ``config/extended.yaml`` adds ``paper/claims_extended.yaml``). Raises
    ``ClaimError`` as ``load_claims`` does, on an id defined in two of the files, and on a
    ``superseded_by`` that names no active claim of any of the files."""
    paths = _paths(paths)
    if not paths:
        raise ClaimError("no claims file given; set paper.claims to a file or a list of files")
    claims, where = [], {}
    for path in paths:
        for claim in load_claims(path, check_references=False):
            if claim["id"] in where:
                raise ClaimError(f"{path}: claim {claim['id']} is already defined in {where[claim['id']]}; "
                                 "give one of them another id")
            where[claim["id"]] = path
            claims.append(claim)
    check_superseded(claims, " and ".join(map(str, paths)))
    return claims


def pattern_regex(pattern: str) -> re.Pattern:
    """A Snakemake output pattern as a regex over file names.

    ``{name}`` matches one path component; ``{name,regex}`` (how Snakemake stores a wildcard
    constraint, e.g. ``data/summary/{benchmark,class_incremental|permuted}.json``) matches the regex.
    """
    body, i = "", 0
    while i < len(pattern):
        if pattern[i] != "{":
            body += re.escape(pattern[i])
            i += 1
            continue
        depth, j = 1, i + 1
        while j < len(pattern) and depth:
            depth += {"{": 1, "}": -1}.get(pattern[j], 0)
            j += 1
        _, comma, constraint = pattern[i + 1:j - 1].partition(",")
        body += f"(?:{constraint})" if comma else r"[^/]+"
        i = j
    return re.compile(body)


def check_provenance(claims: Sequence[dict], rule_outputs: Mapping[str, Sequence[str]]) -> None:
    """Fail unless each claim's rule exists and its output is one of that rule's outputs."""
    for claim in claims:
        rule, output = claim["rule"], claim["output"]
        if rule not in rule_outputs:
            raise ClaimError(f"claim {claim['id']}: rule {rule!r} does not exist in the workflow "
                             f"(rules: {', '.join(sorted(rule_outputs))}); fix 'rule' in the claims file, or "
                             "move the claim to paper/claims_pending.yaml until the rule lands")
        if not any(pattern_regex(p).fullmatch(output) for p in rule_outputs[rule]):
            raise ClaimError(f"claim {claim['id']}: {output!r} is not an output of rule {rule!r} "
                             f"(its outputs: {', '.join(rule_outputs[rule])}); fix 'output' in the claims file")


# --- selecting values -------------------------------------------------------------------------------

def select(doc: Any, path: str) -> Any:
    """Follow a path like ``optimizers.sgd.R_per_seed[*][-1][:-1]`` into parsed JSON.

    ``key`` and ``[i]`` step in; ``[a:b]`` and ``[*]`` map the rest of the path over the elements
    (``[*]`` over a mapping maps over its values). A missing key or index raises KeyError naming it.
    """
    tokens = [(m.group(1), m.group(2)) for m in _TOKEN.finditer(path)]
    rebuilt = "".join(f"[{b}]" if b is not None else f".{k}" for b, k in tokens).lstrip(".")
    if rebuilt != path:
        raise KeyError(f"{path!r} is not a selector (use key.key[0][1:3][*])")

    def walk(value: Any, rest: list, done: str) -> Any:
        if not rest:
            return value
        bracket, key = rest[0]
        here = done + (f"[{bracket}]" if bracket is not None else (f".{key}" if done else key))
        if bracket is None:
            if not isinstance(value, Mapping) or key not in value:
                keys = ", ".join(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
                raise KeyError(f"{here!r} not found (available at {done or 'the top'}: {keys})")
            return walk(value[key], rest[1:], here)
        if bracket == "*":
            items = list(value.values()) if isinstance(value, Mapping) else list(value)
            return [walk(v, rest[1:], here) for v in items]
        if not isinstance(value, list):
            raise KeyError(f"{here!r}: {done or 'the top'} is not a list")
        if ":" in bracket:
            lo, hi = (int(x) if x else None for x in bracket.split(":"))
            return [walk(v, rest[1:], here) for v in value[lo:hi]]
        try:
            return walk(value[int(bracket)], rest[1:], here)
        except IndexError:
            raise KeyError(f"{here!r}: index out of range (length {len(value)})") from None

    return walk(doc, tokens, "")


def per_seed(value: Any, reduce: str = "mean") -> list[float]:
    """One number per seed: the first axis is seeds; deeper axes are reduced (``reduce``)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected numbers, got {value!r}")
    if isinstance(value, (int, float)):
        return [float(value)]
    out = []
    for v in value:
        arr = np.asarray(v, dtype=np.float64)
        out.append(float(REDUCERS[reduce](arr)) if arr.ndim else float(arr))
    if not out:
        raise ValueError("the selected list is empty (no seed)")
    return out


# --- verdicts ---------------------------------------------------------------------------------------

def verdict(low: float, high: float, op: str, threshold: float) -> str:
    """SUPPORTED when [low, high] is entirely on the ``op`` side of ``threshold``, NOT SUPPORTED when
    it is entirely on the other side (touching the threshold counts as the other side), else
    INCONCLUSIVE."""
    if op == "<":
        return SUPPORTED if high < threshold else NOT_SUPPORTED if low >= threshold else INCONCLUSIVE
    return SUPPORTED if low > threshold else NOT_SUPPORTED if high <= threshold else INCONCLUSIVE


def case_verdict(ci95: Sequence[float], ci_adjusted: Sequence[float], op: str, threshold: float) -> str:
    """One case of a claim with k cases: SUPPORTED when its 95% interval ``ci95`` is on the claimed
    side; NOT SUPPORTED when its interval at the Bonferroni level 1 - 0.05/k (``ci_adjusted``, which
    contains ``ci95``) is entirely on the other side; else INCONCLUSIVE (module docstring)."""
    if verdict(ci95[0], ci95[1], op, threshold) == SUPPORTED:
        return SUPPORTED
    return NOT_SUPPORTED if verdict(ci_adjusted[0], ci_adjusted[1], op, threshold) == NOT_SUPPORTED else INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its cases': SUPPORTED if all are, NOT SUPPORTED if any is, else INCONCLUSIVE."""
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in verdicts else INCONCLUSIVE


def _fill(template: str, values: Mapping[str, str]) -> str:
    try:
        return template.format(**values)
    except KeyError as err:
        raise ClaimError(f"selector {template!r} uses {{{err.args[0]}}}, which neither 'over' nor the test fills") from None


def _listify(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _over_values(doc: Any, values: Any, claim_id: str) -> list:
    """An ``over`` entry's values: a list (or one value), or ``{keys_of: <path>}``, the keys of the
    mapping at that path of the output (e.g. every budget a summary holds, whatever the grid)."""
    if isinstance(values, dict):
        if set(values) != {"keys_of"}:
            raise ClaimError(f"claim {claim_id}: an over entry is a list or {{keys_of: <path>}}, got {values}")
        try:
            keys = select(doc, values["keys_of"])
        except KeyError as err:
            raise ClaimError(f"claim {claim_id}: keys_of {values['keys_of']!r}: the output does not hold {err.args[0]}") from None
        if not isinstance(keys, dict) or not keys:
            raise ClaimError(f"claim {claim_id}: keys_of {values['keys_of']!r} is not a non-empty mapping")
        keys = list(keys)
        # Budgets and other numeric keys in numeric order (JSON keys are strings: "10" < "2").
        return sorted(keys, key=float) if all(re.fullmatch(r"-?\d+(\.\d+)?", k) for k in keys) else keys
    return _listify(values)


def _prefixes(selector: str) -> list[tuple[str, str | None]]:
    """The selector's prefixes that name one value (up to its first ``[*]`` or slice), deepest
    first, down to ``""`` (the whole document); each with its last key (None for an index)."""
    out, text, last = [("", None)], "", None
    for m in _TOKEN.finditer(selector):
        bracket, key = m.group(1), m.group(2)
        if bracket is not None and (bracket == "*" or ":" in bracket):
            break
        text += f"[{bracket}]" if bracket is not None else (f".{key}" if text else key)
        last = key if bracket is None else None
        out.append((text, last))
    return out[::-1]


def _along(doc: Any, selector: str) -> list[tuple[str | None, Mapping]]:
    """The mappings along the selector's path, deepest first, each with the key that leads to it."""
    found = []
    for prefix, key in _prefixes(selector):
        try:
            value = select(doc, prefix)
        except KeyError:
            continue
        if isinstance(value, Mapping):
            found.append((key, value))
    return found


def _seeds(doc: Any, selector: str, n: int) -> list | None:
    """The seed of each selected value: the nearest ``seeds`` list along the selector's path
    (deepest first) with ``n`` entries, one per value: a ``seed_stat`` holding its own seeds, else
    the optimizer's or method's entry (``optimizers.<name>.seeds``, ``methods.<name>.seeds``).
    None when there is no such list (values are then paired by position)."""
    for _, mapping in _along(doc, selector):
        seeds = mapping.get("seeds")
        if isinstance(seeds, list) and len(seeds) == n:
            return seeds
    return None


LEARNING_ACCURACY = "learning_accuracy"  # the summaries' key of the quantity `learned` is judged on


def _not_learned(doc: Any, selectors: Sequence[str]) -> list[str]:
    """The entries along the selectors' paths whose ``learned`` is false, by name (the key that
    leads to them, e.g. the optimizer), in order and without repeats."""
    names: list[str] = []
    for sel in selectors:
        for key, mapping in _along(doc, sel):
            name = key if key is not None else sel
            if mapping.get("learned") is False and name not in names:
                names.append(name)
    return names


def _align(doc: Any, items: Sequence[tuple[str, list]]) -> tuple[list[list], list | None, str] | None:
    """Align several per-seed lists (each with the selector it came from) by seed: on the seeds all
    of them have, when each has a seed list (``_seeds``), else by position when their lengths agree.

    Returns (the aligned lists, the common seeds or None, a note), or None when they cannot be
    paired (no seed in common, or no seed lists and different lengths).
    """
    seed_lists = [_seeds(doc, sel, len(values)) for sel, values in items]
    if all(s is not None for s in seed_lists):
        common = [s for s in seed_lists[0] if all(s in other for other in seed_lists[1:])]
        if not common:
            return None
        aligned = [[values[seeds.index(s)] for s in common] for (_, values), seeds in zip(items, seed_lists)]
        dropped = sorted(set().union(*map(set, seed_lists)) - set(common))
        note = f"paired over {len(common)} seeds" + (f" (seeds {dropped} missing on one side)" if dropped else "")
        return aligned, common, note
    if len({len(values) for _, values in items}) == 1:
        n = len(items[0][1])
        return [list(values) for _, values in items], None, f"paired by position over {n} seeds (no seed list)"
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _summary(values: Sequence[float]) -> dict:
    """``{"mean", "ci95", "n"}`` of one side of a case (a floor test's distance and floors): the
    summaries' ``seed_stat`` (ci95 None for one seed or a non-finite value)."""
    stat = seed_stat([float(v) for v in values])
    return {"mean": stat["mean"], "ci95": stat["ci95"], "n": len(values)}


class _Cases:
    """Builds the cases of one claim: each with its interval, its Bonferroni-adjusted interval over
    the claim's ``k`` cases and its verdict."""

    def __init__(self, test: dict, k: int, doc: Any):
        self.op, self.threshold, self.k, self.doc = test.get("op"), test.get("threshold"), k, doc
        self.level_adjusted = bonferroni_level(LEVEL, k)
        self.cases: list[dict] = []

    def _add(self, case: dict, selectors: Sequence[str]) -> None:
        case.setdefault("note", "")
        # The flag guards what a run that did not learn cannot show: retention (forgetting, accuracy
        # kept on old tasks). A claim on the learning accuracy itself, the quantity the flag is
        # judged on (D3a, D3b: plasticity), reads it as it is.
        names = _not_learned(self.doc, [sel for sel in selectors if LEARNING_ACCURACY not in sel])
        if names:
            caveat = "; ".join(f"{name} did not learn: its forgetting is not read as retention" for name in names)
            case.update(verdict=INCONCLUSIVE, caveat=caveat, did_not_learn=names,
                        note=caveat + (f"; {case['note']}" if case["note"] else ""))
        self.cases.append(case)

    def exact(self, label: str, value: float, selectors: Sequence[str], note: str = DETERMINISTIC) -> None:
        ok = value < self.threshold if self.op == "<" else value > self.threshold
        self._add({"case": label, "value": value, "ci95": None, "ci_adjusted": None, "n": None, "k": self.k,
                   "method": "exact", "verdict": SUPPORTED if ok else NOT_SUPPORTED, "note": note}, selectors)

    def interval(self, label: str, method: str, sample: Sequence[float] | tuple[Sequence[float], Sequence[float]],
                 selectors: Sequence[str], note: str = "", **extra: Any) -> None:
        """``method``: "t" (mean of ``sample``), "paired t" (``sample`` holds per-seed differences
        or margins) or "welch" (``sample`` is the pair (a, b))."""
        base = {"case": label, "n": None, "k": self.k, "method": method, "level_adjusted": self.level_adjusted,
                "note": note, **extra}
        if method == "welch":
            a, b = ([float(v) for v in side] for side in sample)
            base["n"] = [len(a), len(b)]
            values, too_few = a + b, min(len(a), len(b)) < 2
            mean = float(np.mean(a) - np.mean(b))
            def fn(level):
                return welch_interval(a, b, level)
        else:
            values = [float(v) for v in sample]
            base["n"] = len(values)
            too_few, mean = len(values) < 2, float(np.mean(values))
            def fn(level):
                return t_interval(values, level)
        if too_few or not all(map(math.isfinite, values)):
            caveat = ONE_SEED if too_few else "a value is not finite (NaN or infinite): no interval"
            self._add({**base, "value": mean, "ci95": None, "ci_adjusted": None, "verdict": INCONCLUSIVE,
                       "caveat": caveat, "note": caveat + (f"; {note}" if note else "")}, selectors)
            return
        mean, low, high = fn(LEVEL)
        _, alow, ahigh = fn(self.level_adjusted)
        self._add({**base, "value": mean, "ci95": [low, high], "ci_adjusted": [alow, ahigh],
                   "verdict": case_verdict((low, high), (alow, ahigh), self.op, self.threshold)}, selectors)


def _case_count(test: dict, combos: int) -> int:
    """How many cases a claim has: one per ``over`` combination, times the (a, b) combinations of a
    compare test or the pairs of a distance or floor test."""
    if test["type"] == "compare":
        return combos * len(_listify(test["a"])) * len(_listify(test["b"]))
    if test["type"] in ("distance", "floor"):
        return combos * len(test["pairs"])
    return combos


def _select_pair(doc: Any, template: str, combo: Mapping, a: str, b: str) -> tuple[str, Any]:
    """A pair's value (``{a}~{b}`` in the template), in either order: a distance is symmetric."""
    sel = _fill(template, {**combo, "a": a, "b": b})
    try:
        return sel, select(doc, sel)
    except KeyError:
        swapped = _fill(template, {**combo, "a": b, "b": a})
        if swapped == sel:
            raise
        try:
            return swapped, select(doc, swapped)
        except KeyError:
            pass
        raise


def evaluate(claim: dict, doc: Any) -> dict:
    """The audit row of one claim on its parsed output ``doc`` (raises ClaimError on a missing value).

    The row holds the claim's fields, its test in words, ``k`` (its number of cases), the
    Bonferroni level of its NOT SUPPORTED rule, its cases and its verdict. Each case holds its
    label, ``value`` (the mean, or the exact value), ``ci95`` ([low, high], or None with no
    interval), ``ci_adjusted`` (at ``level_adjusted``), ``n`` (seeds; ``[n_a, n_b]`` for Welch,
    None for an exact value), ``method`` ("t", "paired t", "welch", "exact" or "equals"), its
    verdict and a note (pairing; "one seed: no interval"; "<name> did not learn: ...").
    """
    test, metric = claim["test"], claim["metric"]
    reduce = metric.get("reduce", "mean")
    over = {name: _over_values(doc, values, claim["id"]) for name, values in (claim.get("over") or {}).items()}
    combos = [dict(zip(over, vals)) for vals in itertools.product(*(_listify(v) for v in over.values()))] or [{}]
    k = _case_count(test, len(combos))
    built = _Cases(test, k, doc)
    try:
        for combo in combos:
            prefix = ", ".join(f"{v}" for v in combo.values())
            if test["type"] in ("threshold", "equals"):
                sel = _fill(metric["select"], combo)
                raw = select(doc, sel)
                label = prefix  # empty for a single case: the row shows the value alone
                if test["type"] == "equals":
                    built.cases.append({"case": label, "value": raw, "ci95": None, "ci_adjusted": None, "n": None,
                                        "k": k, "method": "equals", "note": "",
                                        "verdict": SUPPORTED if raw == test["value"] else NOT_SUPPORTED})
                elif _is_number(raw):
                    built.exact(label, float(raw), [sel])
                else:
                    built.interval(label, "t", per_seed(raw, reduce), [sel])
            elif test["type"] == "compare":
                for a in _listify(test["a"]):
                    for b in _listify(test["b"]):
                        sel_a = _fill(metric["select"], {**combo, "optimizer": a})
                        sel_b = _fill(metric["select"], {**combo, "optimizer": b})
                        raw_a, raw_b = select(doc, sel_a), select(doc, sel_b)
                        label = f"{prefix}: {a} - {b}" if prefix else f"{a} - {b}"
                        if test.get("abs"):
                            label = f"|{label}|"
                        if _is_number(raw_a) and _is_number(raw_b):
                            diff = float(raw_a) - float(raw_b)
                            built.exact(label, abs(diff) if test.get("abs") else diff, [sel_a, sel_b])
                            continue
                        va, vb = per_seed(raw_a, reduce), per_seed(raw_b, reduce)
                        paired = _align(doc, [(sel_a, va), (sel_b, vb)])
                        if paired is not None:
                            (pa, pb), _, note = paired
                            diffs = np.subtract(pa, pb)
                            diffs = np.abs(diffs) if test.get("abs") else diffs
                            built.interval(label, "paired t", diffs.tolist(), [sel_a, sel_b], note)
                        else:
                            if test.get("abs"):
                                raise ClaimError(f"claim {claim['id']}: an abs compare needs the same seeds for {a} and {b}")
                            note = f"unpaired ({len(va)} vs {len(vb)} seeds: some runs are missing)"
                            built.interval(label, "welch", (va, vb), [sel_a, sel_b], note)
            elif test["type"] == "distance":
                for a, b in test["pairs"]:
                    sel_a = _fill(metric["select"], {**combo, "optimizer": a})
                    sel_b = _fill(metric["select"], {**combo, "optimizer": b})
                    paired = _align(doc, [(sel_a, list(select(doc, sel_a))), (sel_b, list(select(doc, sel_b)))])
                    if paired is None:
                        raise ClaimError(f"claim {claim['id']}: {a} and {b} share no seed; "
                                         "a distance needs runs paired by seed")
                    (ra, rb), _, note = paired
                    dists = [float(np.mean(np.abs(np.subtract(x, y, dtype=np.float64)))) for x, y in zip(ra, rb)]
                    label = f"{prefix}: |{a} - {b}|" if prefix else f"|{a} - {b}|"
                    built.interval(label, "t", dists, [sel_a, sel_b], note)
            else:  # floor
                for a, b in test["pairs"]:
                    sel_d, raw_d = _select_pair(doc, metric["select"], combo, a, b)
                    sel_fa = _fill(metric["floor"], {**combo, "optimizer": a})
                    sel_fb = _fill(metric["floor"], {**combo, "optimizer": b})
                    items = [(sel_d, per_seed(raw_d, reduce)), (sel_fa, per_seed(select(doc, sel_fa), reduce)),
                             (sel_fb, per_seed(select(doc, sel_fb), reduce))]
                    paired = _align(doc, items)
                    if paired is None:
                        raise ClaimError(f"claim {claim['id']}: the distance {a}~{b} and the floors of {a} and {b} "
                                         "share no seed; a floor test needs them paired by seed")
                    (d, fa, fb), seeds, note = paired
                    margins = [x - max(y, z) for x, y, z in zip(d, fa, fb)]
                    label = f"{prefix}: {a}~{b}" if prefix else f"{a}~{b}"
                    extra = {"distance": _summary(d), "floors": {a: _summary(fa), b: _summary(fb)}}
                    if seeds is not None:
                        extra["seeds"] = seeds
                    built.interval(label, "paired t", margins, [sel_d, sel_fa, sel_fb], note, **extra)
    except KeyError as err:
        raise ClaimError(f"claim {claim['id']}: {claim['output']} does not hold the value: {err.args[0]}. "
                         "Does the config train every optimizer the claim names?") from None
    except ValueError as err:
        raise ClaimError(f"claim {claim['id']}: {err}") from None
    cases = built.cases
    return {
        "id": claim["id"],
        "statement": " ".join(str(claim["statement"]).split()),
        "source": claim["source"],
        "rule": claim["rule"],
        "output": claim["output"],
        "figure": claim["figure"],
        "test": describe_test(test, k, exact=bool(cases) and all(c.get("method") == "exact" for c in cases)),
        "k": k,
        "level_adjusted": built.level_adjusted,
        "cases": cases,
        "verdict": combine([c["verdict"] for c in cases]),
    }


def describe_test(test: dict, k: int = 1, exact: bool = False) -> str:
    """The test of a claim in words for the audit table, e.g. ``mean < 0.05 (t 95% CI)``; with
    ``k`` > 1 cases, the level at which a case on the wrong side makes the claim NOT SUPPORTED.
    With ``exact`` (every case a deterministic number), ``value > 1.5 (exact)``: no interval."""
    if test["type"] == "equals":
        return f"== {json.dumps(test['value'])}"
    if exact:
        return f"value {test['op']} {test['threshold']:g} (exact: deterministic)"
    what = {"threshold": "mean", "compare": "a - b" if not test.get("abs") else "|a - b|",
            "distance": "mean |a - b| per seed",
            "floor": "margin d(a, b) - max(floor a, floor b) per seed"}[test["type"]]
    rule = "t 95% CI" if k == 1 else f"t 95% CI; against: {100 * bonferroni_level(LEVEL, k):.4g}% CI, k = {k}"
    return f"{what} {test['op']} {test['threshold']:g} ({rule})"


def audit(claims: Sequence[dict], rule_outputs: Mapping[str, Sequence[str]], root: str | Path = ".") -> dict:
    """Check every active claim's provenance, then evaluate it on its output file under ``root``.

    Returns ``{"claims": rows of the active claims, "counts": {verdict: n} over them, "superseded":
    [...]}``. Superseded claims (``superseded_by``) are neither evaluated nor counted; each is listed
    as ``{id, statement, last_verdict, last_verdict_commit, superseded_by, new_verdicts, reason}``
    where ``new_verdicts`` maps each replacing claim to its verdict in this audit (None if it was
    not audited). Raises ``ClaimError`` (provenance, a missing output or value, a ``superseded_by``
    that names no active claim).
    """
    check_superseded(claims)
    active = [c for c in claims if not is_superseded(c)]
    check_provenance(active, rule_outputs)
    rows, docs = [], {}
    for claim in active:
        path = Path(root) / claim["output"]
        if claim["output"] not in docs:
            if not path.exists():
                raise ClaimError(f"claim {claim['id']}: output {claim['output']} does not exist; "
                                 f"build it first: snakemake --cores all {claim['output']}")
            docs[claim["output"]] = json.loads(path.read_text())
        rows.append(evaluate(claim, docs[claim["output"]]))
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    now = {r["id"]: r["verdict"] for r in rows}
    superseded = [{"id": c["id"], "statement": " ".join(str(c["statement"]).split()),
                   "last_verdict": c["last_verdict"], "last_verdict_commit": str(c["last_verdict_commit"]),
                   "superseded_by": _listify(c["superseded_by"]),
                   "new_verdicts": {new: now.get(new) for new in _listify(c["superseded_by"])},
                   "reason": " ".join(str(c["reason"]).split())}
                  for c in claims if is_superseded(c)]
    return {"claims": rows, "counts": counts, "superseded": superseded}


def lock_record(lock_path: str | Path) -> dict:
    """The environment's lock file as the audit records it: its file name (not this machine's path
    to it) and the SHA-256 of its bytes."""
    path = Path(lock_path)
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _relative(path: str | Path, root: str | Path) -> str:
    """``path`` as the page names it: relative to the run's root, else to this repository (a run
    with ``--directory`` elsewhere reads the repository's claims files), else as given."""
    for base in (Path(root), Path(__file__).resolve().parents[3]):
        try:
            return Path(path).resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return Path(path).as_posix()


def run_audit(claims_path: str | Path | Sequence[str | Path], rule_outputs: Mapping[str, Sequence[str]], output_md: str | Path,
              output_json: str | Path, root: str | Path = ".", output_verdicts: str | Path | None = None,
              lock: str | Path | None = None, dataset: str | None = None) -> dict:
    """``audit`` of the claims file (or files, in order: ``load_claims_files``), written as ``data/audit.json`` and ``paper/audit.md`` (atomically),
    and with ``output_verdicts`` as ``{claim id: verdict}`` of the active claims only (superseded
    ones are listed under ``result["superseded"]`` and on the page) (``paper/verdicts.json``, committed: what
    ``optbias compare`` checks a new run against). With ``lock`` (``requirements.lock``), the result
    and the page also name the lock and its SHA-256; with ``dataset`` (the display name of the run's
    dataset, e.g. "Fashion-MNIST"), they name the dataset the claims were measured on. Prints the
    verdict counts. Raises ``ClaimError`` as ``audit`` does."""
    result = audit(load_claims_files(claims_path), rule_outputs, root)
    result["claims_files"] = [_relative(p, root) for p in _paths(claims_path)]
    if dataset is not None:
        result["dataset"] = dataset
    if lock is not None:
        result["environment"] = lock_record(lock)
    atomic_write_json(output_json, result)
    if output_verdicts is not None:
        atomic_write_json(output_verdicts, {row["id"]: row["verdict"] for row in result["claims"]})
    atomic_write_bytes(output_md, audit_markdown(result).encode())
    print(", ".join(f"{n} {v}" for v, n in result["counts"].items()))
    return result


# --- rendering --------------------------------------------------------------------------------------

def format_value(value: Any, ci: Sequence[float] | None, n: int | None = None) -> str:
    """``mean [low, high]`` with three decimals (followed by `` (n = N)`` when ``n`` is given), or
    ``mean (n = 1)`` for one seed (no interval), or the value as JSON when it has no CI."""
    if not _is_number(value):
        return json.dumps(value)
    if ci is None:
        return f"{value:.3f} (n = 1)" if n == 1 else json.dumps(value)
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" + (f" (n = {n})" if n is not None else "")


def format_stat(stat: Mapping) -> str:
    """A ``seed_stat`` as text: ``mean [low, high]``, or ``mean (n = 1)`` when it holds one seed."""
    per = stat.get("per_seed")
    n = len(per) if isinstance(per, list) and stat.get("ci95") is None else None
    return format_value(stat["mean"], stat.get("ci95"), n)


def _n_text(n: Any) -> str:
    return " vs ".join(map(str, n)) if isinstance(n, list) else str(n)


def format_case(case: Mapping) -> str:
    """One case's measured value: ``mean [low, high] (n = N)``, with the Bonferroni-adjusted
    interval too when the claim has k > 1 cases and this case is not SUPPORTED (``(n = 3; 98.33% CI
    [low, high])``); an exact value as ``v (exact)``; a floor case with its distance and both floors
    next to the margin; a caveat (one seed, did not learn) after the value."""
    method, value, ci, n = case.get("method"), case["value"], case.get("ci95"), case.get("n")
    if method == "exact":
        text = f"{value:.6g} (exact)"
    elif method == "equals" or not _is_number(value):
        text = json.dumps(value)
    elif ci is None:
        text = f"{value:.3f} (n = {_n_text(n)})" if n is not None else json.dumps(value)
    else:
        inside = [f"n = {_n_text(n)}"] if n is not None else []
        adjusted = case.get("ci_adjusted")
        if adjusted is not None and (case.get("k") or 1) > 1 and case.get("verdict") != SUPPORTED:
            # Where the claim is not supported, the interval that decides against it.
            inside.append(f"{100 * case['level_adjusted']:.4g}% CI [{adjusted[0]:.3f}, {adjusted[1]:.3f}]")
        text = f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" + (f" ({'; '.join(inside)})" if inside else "")
    if "distance" in case and "floors" in case:
        def side(stat):
            return format_value(stat["mean"], stat.get("ci95"), 1 if stat.get("n") == 1 else None)
        floors = ", ".join(f"{name} {side(stat)}" for name, stat in case["floors"].items())
        text = f"{side(case['distance'])} vs floor max({floors}): margin {text}"
    if case.get("caveat"):
        text += f" ({case['caveat']})"
    return text


def measured(row: dict) -> str:
    """Every case of a claim on one line: ``case: mean [low, high] (n = N)`` (``format_case``)."""
    return "; ".join(f"{c['case']}: {format_case(c)}" if c["case"] else format_case(c) for c in row["cases"])


def _superseded_lines(rows: Sequence[Mapping]) -> list[str]:
    lines = ["", "## Superseded claims", "",
             "Not evaluated and not counted above: each was replaced by the claim(s) named here, for the reason given; "
             "its verdict is the last one the audit gave it, at the commit named.", "",
             "| old claim | statement | last verdict | replaced by (verdict now) | reason |",
             "|---|---|---|---|---|"]
    for row in rows:
        new = ", ".join(f"[{i}](#claim-{i}): **{v if v is not None else 'not audited'}**"
                        for i, v in row["new_verdicts"].items())
        cells = [f'<a id="claim-{row["id"]}"></a>**{row["id"]}**', row["statement"],
                 f"**{row['last_verdict']}** (commit `{row['last_verdict_commit']}`)", new, row["reason"]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


def audit_markdown(result: dict) -> str:
    """paper/audit.md from ``run_audit``'s result: a header (the claims files, how intervals and
    verdicts are decided, the rerun command, the verdict counts; the dataset when ``result`` names
    it, with a note on reading the statements when it is not MNIST; the lock when named), then one
    row per claim (each case's mean, 95% interval and n); the anchor ``claim-<id>`` is what the
    paper links to. Superseded claims follow in a section of their own."""
    c = result["counts"]
    files = " and ".join(f"`{f}`" for f in result.get("claims_files", ["paper/claims.yaml"]))
    superseded = result.get("superseded") or []
    lines = [
        "# Claims audit",
        "",
        f"Generated by rule `audit` (`src/optbias/paper/claims.py`) from {files} and the pipeline's outputs; "
        "do not edit. Measured values are means over seeds with Student-t 95% intervals of the mean over seeds, "
        "or of the per-seed paired differences (runs paired by seed); Welch for unpaired; deterministic values "
        "tested exactly; n is the number of seeds. "
        f"Thresholds were declared in {files} before any result was seen. Rerun one claim's evidence with "
        "`snakemake --cores all paper/audit.md --forcerun <rule>` (the target first: `--forcerun` takes every "
        "word after it).",
        "",
        "Verdicts: a claim with k cases is SUPPORTED when every case's 95% interval lies on the claimed side of "
        "its threshold (an intersection-union test: every case must pass on its own, so no correction is needed); "
        "NOT SUPPORTED when some case's interval at the Bonferroni level 1 − 0.05/k lies entirely on the other "
        "side (touching the threshold counts as the other side); INCONCLUSIVE otherwise, and for a case with one "
        "seed (no interval) or one that reads the retention (forgetting, accuracy kept) of an optimizer that did "
        "not learn; a case on the learning accuracy itself (a plasticity claim) reads it as it is.",
        "",
        f"**{c[SUPPORTED]} supported, {c[NOT_SUPPORTED]} not supported, {c[INCONCLUSIVE]} inconclusive** "
        f"(of {len(result['claims'])})." + (f" {len(superseded)} superseded claim(s) are listed at the end, "
                                            "not counted." if superseded else ""),
        "",
    ]
    if "dataset" in result:  # the statements keep the paper's terms: MNIST
        lines += [f"Measured on **{result['dataset']}**." + (
            "" if result["dataset"] == "MNIST" else
            f" The statements are the claims as declared, in the paper's terms: where they say MNIST, "
            f"the values are measured on {result['dataset']}."), ""]
    if "environment" in result:
        env = result["environment"]
        lines += [f"Software: `{env['file']}` (SHA-256 `{env['sha256']}`), the exact versions that `make reproduce` "
                  "installs; each run's `metrics.json` records the torch version it ran with.", ""]
    lines += [
        "| claim | statement | measured (mean [95% CI] (n)) | test | verdict | rule | output | figure |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["claims"]:
        cells = [f'<a id="claim-{row["id"]}"></a>**{row["id"]}**', row["statement"], measured(row), row["test"],
                 f"**{row['verdict']}**", f"`{row['rule']}`", f"`{row['output']}`", f"`{row['figure']}`"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if superseded:
        lines += _superseded_lines(superseded)
    return "\n".join(lines) + "\n"
