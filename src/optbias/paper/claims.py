"""The claims audit: evaluate every claim of paper/claims.yaml on the pipeline's outputs.

Why a module of its own: a claim in the paper is only as good as the number behind it, so each
claim names the rule and output that hold its evidence, a selector into that JSON, and a test with
a threshold written before the results were seen. This module turns that into a verdict:

* SUPPORTED: the whole bootstrap 95% CI (over seeds) is on the claimed side of the threshold;
* NOT SUPPORTED: the whole CI is on the other side (touching the threshold counts as the other side);
* INCONCLUSIVE: the CI straddles the threshold.

A claim with several cases (``over`` values, several ``b`` optimizers, several pairs) is SUPPORTED
when every case is, NOT SUPPORTED when any case is, and INCONCLUSIVE otherwise. A claim that is not
supported never makes the audit fail; a claim that points at a rule or an output that does not
exist, or at a value its output does not hold, does (``ClaimError``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..fileio import atomic_write_bytes, atomic_write_json
from ..stats import bootstrap_ci, bootstrap_diff_ci

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE"
REQUIRED = ("id", "statement", "source", "rule", "output", "metric", "test", "figure")
TESTS = ("threshold", "compare", "distance", "equals")
OPS = ("<", ">")
REDUCERS = {"mean": np.mean, "max": np.max, "min": np.min}
_TOKEN = re.compile(r"\[(\*|-?\d+|-?\d*:-?\d*)\]|([^.\[\]]+)")


class ClaimError(ValueError):
    """A claim cannot be evaluated: it names a missing rule, output or value, or is malformed."""


# --- loading and checking -------------------------------------------------------------------------

def load_claims(path: str | Path) -> list[dict]:
    """Read and check a claims file; the error names the claim and the field to fix."""
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
        if test["type"] != "equals" and (test.get("op") not in OPS or not isinstance(test.get("threshold"), (int, float))):
            raise ClaimError(f"{where}: a {test['type']} test needs op ('<' or '>') and a numeric threshold")
        if test["type"] == "compare" and not ("a" in test and "b" in test):
            raise ClaimError(f"{where}: a compare test needs a (optimizer) and b (one or a list)")
        if test["type"] == "distance" and not test.get("pairs"):
            raise ClaimError(f"{where}: a distance test needs pairs: [[a, b], ...]")
        if test["type"] == "equals" and "value" not in test:
            raise ClaimError(f"{where}: an equals test needs value")
        if not isinstance(claim["metric"], dict) or "select" not in claim["metric"]:
            raise ClaimError(f"{where}: metric needs select (a path into the output JSON)")
        if claim["metric"].get("reduce", "mean") not in REDUCERS:
            raise ClaimError(f"{where}: metric.reduce must be one of {', '.join(REDUCERS)}")
    return claims


def _paths(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    """One claims file or several, as a list (``paper.claims`` is either)."""
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def load_claims_files(paths: str | Path | Sequence[str | Path]) -> list[dict]:
    """``load_claims`` of one file or of several, in order (the default paper reads
    ``paper/claims.yaml``; ``config/extended.yaml`` adds ``paper/claims_extended.yaml``). Raises
    ``ClaimError`` as ``load_claims`` does, and on an id defined in two of the files."""
    paths = _paths(paths)
    if not paths:
        raise ClaimError("no claims file given; set paper.claims to a file or a list of files")
    claims, where = [], {}
    for path in paths:
        for claim in load_claims(path):
            if claim["id"] in where:
                raise ClaimError(f"{path}: claim {claim['id']} is already defined in {where[claim['id']]}; "
                                 "give one of them another id")
            where[claim["id"]] = path
            claims.append(claim)
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
    """SUPPORTED when [low, high] is entirely on the ``op`` side of ``threshold``."""
    if op == "<":
        return SUPPORTED if high < threshold else NOT_SUPPORTED if low >= threshold else INCONCLUSIVE
    return SUPPORTED if low > threshold else NOT_SUPPORTED if high <= threshold else INCONCLUSIVE


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


def _seeds(doc: Any, selector: str) -> list | None:
    """The ``seeds`` list next to an ``optimizers.<name>`` entry, if the selector passes one."""
    m = re.match(r"(.*?optimizers\.[^.\[]+)", selector)
    if not m:
        return None
    try:
        seeds = select(doc, m.group(1) + ".seeds")
    except KeyError:
        return None
    return seeds if isinstance(seeds, list) else None


def _pairs(doc: Any, sel_a: str, sel_b: str, a: list, b: list) -> tuple[list, list, str] | None:
    """Align a and b by seed: on the seeds both finished (summaries list them), else by position.

    None when they cannot be paired (no seed lists and different lengths).
    """
    seeds_a, seeds_b = _seeds(doc, sel_a), _seeds(doc, sel_b)
    if seeds_a is not None and seeds_b is not None and len(a) == len(seeds_a) and len(b) == len(seeds_b):
        common = [s for s in seeds_a if s in seeds_b]
        if not common:
            return None
        pa = [a[seeds_a.index(s)] for s in common]
        pb = [b[seeds_b.index(s)] for s in common]
        dropped = sorted(set(seeds_a) ^ set(seeds_b))
        note = f"paired over {len(common)} seeds" + (f" (seeds {dropped} missing on one side)" if dropped else "")
        return pa, pb, note
    if len(a) == len(b):
        return a, b, f"paired over {len(a)} seeds"
    return None


def _case(label: str, mean: float, low: float, high: float, n: int, verdict_: str, note: str = "") -> dict:
    return {"case": label, "value": mean, "ci95": [low, high], "n": n, "verdict": verdict_, "note": note}


def evaluate(claim: dict, doc: Any) -> dict:
    """The audit row of one claim on its parsed output ``doc`` (raises ClaimError on a missing value)."""
    test, metric = claim["test"], claim["metric"]
    reduce = metric.get("reduce", "mean")
    over = {name: _over_values(doc, values, claim["id"]) for name, values in (claim.get("over") or {}).items()}
    combos = [dict(zip(over, vals)) for vals in itertools.product(*(_listify(v) for v in over.values()))] or [{}]
    cases = []
    try:
        for combo in combos:
            prefix = ", ".join(f"{v}" for v in combo.values())
            if test["type"] in ("threshold", "equals"):
                sel = _fill(metric["select"], combo)
                raw = select(doc, sel)
                label = prefix  # empty for a single case: the row shows the value alone
                if test["type"] == "equals":
                    ok = raw == test["value"]
                    cases.append({"case": label, "value": raw, "ci95": None, "n": 1,
                                  "verdict": SUPPORTED if ok else NOT_SUPPORTED, "note": ""})
                    continue
                values = per_seed(raw, reduce)
                mean, low, high = bootstrap_ci(values)
                cases.append(_case(label, mean, low, high, len(values), verdict(low, high, test["op"], test["threshold"])))
            elif test["type"] == "compare":
                for a in _listify(test["a"]):
                    for b in _listify(test["b"]):
                        sel_a = _fill(metric["select"], {**combo, "optimizer": a})
                        sel_b = _fill(metric["select"], {**combo, "optimizer": b})
                        va, vb = per_seed(select(doc, sel_a), reduce), per_seed(select(doc, sel_b), reduce)
                        label = f"{prefix}: {a} - {b}" if prefix else f"{a} - {b}"
                        if test.get("abs"):
                            label = f"|{label}|"
                        paired = _pairs(doc, sel_a, sel_b, va, vb)
                        if paired is not None:
                            pa, pb, note = paired
                            diffs = np.subtract(pa, pb)
                            diffs = np.abs(diffs) if test.get("abs") else diffs
                            mean, low, high = bootstrap_ci(diffs.tolist())
                            n = len(diffs)
                        else:
                            if test.get("abs"):
                                raise ClaimError(f"claim {claim['id']}: an abs compare needs the same seeds for {a} and {b}")
                            mean, low, high = bootstrap_diff_ci(va, vb)
                            note = f"unpaired ({len(va)} vs {len(vb)} seeds: some runs are missing)"
                            n = min(len(va), len(vb))
                        v = verdict(low, high, test["op"], test["threshold"])
                        cases.append(_case(label, mean, low, high, n, v, note))
            else:  # distance
                for a, b in test["pairs"]:
                    sel_a = _fill(metric["select"], {**combo, "optimizer": a})
                    sel_b = _fill(metric["select"], {**combo, "optimizer": b})
                    paired = _pairs(doc, sel_a, sel_b, list(select(doc, sel_a)), list(select(doc, sel_b)))
                    if paired is None:
                        raise ClaimError(f"claim {claim['id']}: {a} and {b} share no seed; "
                                         "a distance needs runs paired by seed")
                    ra, rb, _ = paired
                    dists = [float(np.mean(np.abs(np.subtract(x, y, dtype=np.float64)))) for x, y in zip(ra, rb)]
                    mean, low, high = bootstrap_ci(dists)
                    label = f"{prefix}: |{a} - {b}|" if prefix else f"|{a} - {b}|"
                    cases.append(_case(label, mean, low, high, len(dists),
                                       verdict(low, high, test["op"], test["threshold"])))
    except KeyError as err:
        raise ClaimError(f"claim {claim['id']}: {claim['output']} does not hold the value: {err.args[0]}. "
                         "Does the config train every optimizer the claim names?") from None
    except ValueError as err:
        raise ClaimError(f"claim {claim['id']}: {err}") from None
    return {
        "id": claim["id"],
        "statement": " ".join(str(claim["statement"]).split()),
        "source": claim["source"],
        "rule": claim["rule"],
        "output": claim["output"],
        "figure": claim["figure"],
        "test": describe_test(test),
        "cases": cases,
        "verdict": combine([c["verdict"] for c in cases]),
    }


def describe_test(test: dict) -> str:
    """The test of a claim in words for the audit table, e.g. ``mean < 0.05 (95% CI)``."""
    if test["type"] == "equals":
        return f"== {json.dumps(test['value'])}"
    what = {"threshold": "mean", "compare": "a - b" if not test.get("abs") else "|a - b|",
            "distance": "mean |a - b| per seed"}[test["type"]]
    return f"{what} {test['op']} {test['threshold']:g} (95% CI)"


def audit(claims: Sequence[dict], rule_outputs: Mapping[str, Sequence[str]], root: str | Path = ".") -> dict:
    """Check every claim's provenance, then evaluate it on its output file under ``root``."""
    check_provenance(claims, rule_outputs)
    rows, docs = [], {}
    for claim in claims:
        path = Path(root) / claim["output"]
        if claim["output"] not in docs:
            if not path.exists():
                raise ClaimError(f"claim {claim['id']}: output {claim['output']} does not exist; "
                                 f"build it first: snakemake --cores all {claim['output']}")
            docs[claim["output"]] = json.loads(path.read_text())
        rows.append(evaluate(claim, docs[claim["output"]]))
    counts = {v: sum(r["verdict"] == v for r in rows) for v in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)}
    return {"claims": rows, "counts": counts}


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
    and with ``output_verdicts`` as ``{claim id: verdict}`` (``paper/verdicts.json``, committed: what
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

def format_value(value: Any, ci: Sequence[float] | None) -> str:
    """``mean [low, high]`` with three decimals, or the value as JSON when it has no CI."""
    if ci is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return json.dumps(value)
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def measured(row: dict) -> str:
    """Every case of a claim on one line: ``case: mean [low, high]``."""
    return "; ".join(f"{c['case']}: {format_value(c['value'], c['ci95'])}" if c["case"]
                     else format_value(c["value"], c["ci95"]) for c in row["cases"])


def audit_markdown(result: dict) -> str:
    """paper/audit.md from ``run_audit``'s result: a header (the claims files, the rerun command, the
    verdict counts; the dataset when ``result`` names it, with a note on reading the statements when
    it is not MNIST; the lock when named), then one row per claim; the anchor ``claim-<id>`` is what
    the paper links to."""
    c = result["counts"]
    files = " and ".join(f"`{f}`" for f in result.get("claims_files", ["paper/claims.yaml"]))
    lines = [
        "# Claims audit",
        "",
        f"Generated by rule `audit` (`src/optbias/paper/claims.py`) from {files} and the pipeline's outputs; "
        "do not edit. Measured values are means over seeds with bootstrap 95% CIs; thresholds were declared "
        f"in {files} before any result was seen. Rerun one claim's evidence with "
        "`snakemake --cores all paper/audit.md --forcerun <rule>` (the target first: `--forcerun` takes every "
        "word after it).",
        "",
        f"**{c[SUPPORTED]} supported, {c[NOT_SUPPORTED]} not supported, {c[INCONCLUSIVE]} inconclusive** "
        f"(of {len(result['claims'])}).",
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
        "| claim | statement | measured (mean [95% CI]) | test | verdict | rule | output | figure |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["claims"]:
        cells = [f'<a id="claim-{row["id"]}"></a>**{row["id"]}**', row["statement"], measured(row), row["test"],
                 f"**{row['verdict']}**", f"`{row['rule']}`", f"`{row['output']}`", f"`{row['figure']}`"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
