"""Semantic checks and expansion of a workflow config, on top of the JSON schema.

All of a config's defaults and checks live in two places. The schema
(workflow/schemas/config.schema.yaml) holds the structure, every key's type, default and
description; this module holds what only the library knows: datasets, benchmarks, optimizer types
and their hyperparameters, and the references between config blocks (ablation base, swept
optimizers, Powerprop methods). Both run when the Snakefile is parsed (``validate``), so a bad
config stops before any job starts with a message that starts with the key to fix, and neither
imports torch, so parsing stays fast.

This module sits on top of the library: it imports the registries of the stages, and nothing in
the library imports it.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import data, fileio, optim
from .continual import benchmarks, settings

# A noise-floor control of headline optimizer <name> is the entry <name>-reorder (``noise_floor_controls``).
CONTROL_SUFFIX = "-reorder"


class ConfigError(ValueError):
    """The config is malformed or names something the library does not know; the message names the key."""


def validate(config: dict, schema_path: str | Path) -> None:
    """Everything the Snakefile checks before it builds the DAG, in order; raises ``ConfigError``.

    1. every key is text (YAML reads ``no``, ``on``, ``1e-3``-like numbers and ``null`` as other
       types, and the schema's name patterns only look at text);
    2. the JSON schema at ``schema_path``: every problem, one line each, starting with its key
       (``optimizers.adam.lr: ...``), with a hint where a fix is known (a number YAML read as text);
       the schema's defaults are filled into ``config`` on the way, as ``snakemake.utils.validate`` does;
    3. every number finite (YAML reads ``.inf`` and ``.nan``; no output could hold them);
    4. ``check``: the names only the library knows and the references between blocks.
    """
    problems = non_text_keys(config) or schema_problems(config, load_schema(str(schema_path)))
    problems = problems or [f"{key}: {value} is not a finite number" for key, value in fileio.non_finite_fields(config)]
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else
                          f"the config has {len(problems)} problems:\n  " + "\n  ".join(problems))
    check(config)


def follow_key_order(config: dict, reference: dict) -> None:
    """Reorder every mapping of ``config``, in place, to ``reference``'s key order; keys new to it follow.

    Snakemake applies a ``--configfile``'s values first, then the Snakefile's ``configfile:``
    (config/config.yaml), then the ``--configfile`` again, so the keys the extra file overrides
    come first in the merged mappings: ``optimizers: {adamw: {lr: 3.0e-4}}`` in config/fashion.yaml
    put adamw before sgd. Keys order the legends and the pairs of optimizers that the summaries
    name (``sgd~adamw``), and a ``--configfile`` should change values, not that order.

    Args:
        config: the merged config; nested mappings are reordered too, values are not changed.
        reference: the parsed config/config.yaml. A mapping of ``config`` that is not a mapping in
            ``reference`` keeps its order.

    Raises:
        AttributeError: ``config`` or ``reference`` is not a mapping (Snakemake rejects such a
            config file before this runs).
    """
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(reference.get(key), dict):
            follow_key_order(value, reference[key])
    ranks = {key: rank for rank, key in enumerate(reference)}
    ordered = sorted(config, key=lambda key: (key not in ranks, ranks.get(key, 0)))  # stable: new keys keep their order
    for key in ordered:
        config[key] = config.pop(key)


@functools.lru_cache(maxsize=4)
def load_schema(path: str) -> dict:
    """The parsed schema file (YAML); cached, so never modify the result."""
    import yaml

    return yaml.safe_load(Path(path).read_text())


def schema_problems(config: dict, schema: dict) -> list[str]:
    """One line per schema violation of ``config``, each starting with the key path; [] when valid.

    Fills the schema's defaults into ``config`` (a copy of each, the schema stays as it is).
    """
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    properties = base.VALIDATORS["properties"]

    def with_defaults(validator, props, instance, subschema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from properties(validator, props, instance, subschema)

    validator = jsonschema.validators.extend(base, {"properties": with_defaults})(schema)
    errors = sorted(validator.iter_errors(config),
                    key=lambda e: [f"{p:09d}" if isinstance(p, int) else str(p) for p in e.absolute_path])
    return list(dict.fromkeys(line for error in errors for line in _describe(error)))


def non_text_keys(value: Any, path: tuple = ()) -> list[str]:
    """One line per mapping key in ``value`` (nested) that is not text, e.g. ``optimizers: {no: ...}``,
    which YAML reads as the key ``False``. [] when every key is text."""
    if isinstance(value, list):
        return [line for i, item in enumerate(value) for line in non_text_keys(item, (*path, i))]
    if not isinstance(value, dict):
        return []
    lines = [f"{key_path(path)}: the key {key!r} is {_type_name(key)}, not text: YAML reads the keys yes, no, on, "
             "off, true, false, null and numbers as such, so quote the key in the config file"
             for key in value if not isinstance(key, str)]
    return lines + [line for key, item in value.items() if isinstance(key, str)
                    for line in non_text_keys(item, (*path, key))]


def key_path(parts: Iterable[Any]) -> str:
    """``["optimizers", "adam", "lr"]`` -> ``optimizers.adam.lr``; list positions in brackets: ``seeds[1]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the config)"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(error) -> list[str]:
    """The lines of one jsonschema error: key path first, then what is wrong and, if known, the fix."""
    parts = list(error.absolute_path)
    where, kind, instance = key_path(parts), error.validator, error.instance
    if kind == "required" and isinstance(instance, dict):
        return [f"{key_path([*parts, k])}: missing (required)" for k in error.validator_value if k not in instance]
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(error.schema.get("properties", {}))
        extra = [k for k in instance if k not in known]
        return [f"{key_path([*parts, k])}: unknown key; known keys here: {', '.join(known) or 'none'}"
                for k in extra]
    if "propertyNames" in error.schema_path:  # the name itself fails (jsonschema reports the inner keyword)
        return [f"{where}: the name {_short(instance)} is not allowed: names become parts of output paths, so use "
                f"letters, digits, '.' and '-' only (no '/', no space), starting with a letter or digit"]
    if kind == "type" and instance is None:
        return [f"{where}: no value (YAML null), expected {_expected(error.validator_value)}"]
    if kind == "type":
        return [f"{where}: {_short(instance)} is {_type_name(instance)}, not {_expected(error.validator_value)}"
                f"{_number_hint(instance, error.validator_value)}"]
    if kind == "oneOf" and all(set(s) == {"required"} for s in error.validator_value):
        names = [n for s in error.validator_value for n in s["required"]]
        return [f"{where}: give exactly one of {', '.join(names)}"]
    if kind in ("oneOf", "anyOf") and error.context:
        import jsonschema

        return _describe(jsonschema.exceptions.best_match(error.context))
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return [f"{where}: {message}"]


def _type_name(value: Any) -> str:
    names = {str: "text", bool: "a boolean", int: "an integer", float: "a number", list: "a list", type(None): "null"}
    return "a mapping" if isinstance(value, dict) else names.get(type(value), f"a {type(value).__name__}")


def _expected(types: str | list[str]) -> str:
    names = {"string": "text", "number": "a number", "integer": "an integer", "object": "a mapping",
             "array": "a list", "boolean": "true or false", "null": "null"}
    return " or ".join(names.get(t, t) for t in ([types] if isinstance(types, str) else types))


def _number_hint(value: Any, types: str | list[str]) -> str:
    """For a number the YAML reader kept as text (``1e-3``), how to write it so it reads as a number."""
    wanted = {types} if isinstance(types, str) else set(types)
    if not isinstance(value, str) or not wanted & {"number", "integer"}:
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    if "number" not in wanted and number.is_integer():
        quoted = " without quotes" if value.strip() == str(int(number)) else ""
        return f": write {int(number)}{quoted}"
    m = re.fullmatch(r"([+-]?)(\d*)(?:\.(\d*))?[eE]([+-]?)(\d+)", value.strip())
    if m:
        sign, whole, frac, exp_sign, exp = m.groups()
        fixed = f"{sign}{whole or 0}.{frac or 0}e{exp_sign or '+'}{exp}"
        return (f": write {fixed} (YAML reads a number as text unless its mantissa has a '.' and its "
                "exponent a sign)")
    return f": write {value.strip()} without quotes"


def noise_floor_controls(config: dict) -> dict[str, str]:
    """Claim 9's noise-floor controls: control entry name -> its headline optimizer, in config order.

    With a ``noise_floor`` block, every headline optimizer ``<name>`` of ``optimizers`` gets a
    control ``<name>-reorder`` (``CONTROL_SUFFIX``): the same entry, seeds and initial weights, and
    another batch order (``train.batch_order``, ``train_overrides``). {} without the block.
    """
    if not config.get("noise_floor"):
        return {}
    return {f"{name}{CONTROL_SUFFIX}": name for name in config["optimizers"]}


def optimizer_entries(config: dict) -> dict[str, dict]:
    """Every trainable optimizer entry: ``optimizers``, the Shampoo ablation's variants, and the
    noise-floor controls (``noise_floor_controls``).

    A variant is its base entry with the variant's ``optimizer`` overrides applied; a control is
    its headline optimizer's entry as it is. Raises ``ConfigError`` when a name is used twice.
    """
    entries = dict(config["optimizers"])
    ablation = config.get("ablation")
    if ablation:
        base = ablation["base"]
        if base not in config["optimizers"]:
            raise ConfigError(f"ablation.base: {base!r} is not an optimizer; optimizers: {', '.join(config['optimizers'])}")
        for name, variant in ablation["variants"].items():
            if name in entries:
                raise ConfigError(f"ablation.variants.{name}: the name is already used by an optimizer")
            entries[name] = {**config["optimizers"][base], **variant.get("optimizer", {})}
    for name, headline in noise_floor_controls(config).items():
        if name in entries:
            raise ConfigError(f"noise_floor: the control of {headline!r} is named {name!r}, a name already used by "
                              f"an optimizer or ablation variant; rename that one")
        entries[name] = config["optimizers"][headline]
    return entries


def train_overrides(config: dict, name: str) -> dict:
    """The ``train`` settings of one optimizer entry (an ablation variant may override some).

    An ablation variant records a divergence instead of failing the pipeline: that a variant
    (say, Shampoo without grafting) blows up on some seeds is a finding, reported with its count.
    A noise-floor control (``noise_floor_controls``) has its headline optimizer's settings plus
    ``batch_order`` (``noise_floor.batch_order``), added last; no other entry gets that key, so the
    specs of the runs without a control stay the same text (they are the training rules' params).
    """
    controls = noise_floor_controls(config)
    if name in controls:
        return {**config.get("train", {}), "batch_order": config["noise_floor"]["batch_order"]}
    variants = config.get("ablation", {}).get("variants", {})
    if name not in variants:
        return dict(config.get("train", {}))
    return {**config.get("train", {}), "on_divergence": "record", **variants[name].get("train", {})}


def check(config: dict) -> None:
    """Check a schema-validated config for names the library does not know; raises ``ConfigError``."""
    dataset = config.get("dataset")
    if dataset not in data.SOURCES:
        raise ConfigError(f"dataset: unknown dataset {dataset!r}; known datasets: {', '.join(sorted(data.SOURCES))}")
    for name in config.get("benchmarks", {}):
        if name not in benchmarks.BENCHMARKS:
            raise ConfigError(
                f"benchmarks: unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(benchmarks.BENCHMARKS))}"
            )
    entries = optimizer_entries(config)
    for name, entry in entries.items():
        try:
            optim.check(name, entry)
        except optim.OptimizerConfigError as err:
            raise ConfigError(str(err)) from None
    check_train_settings(config, entries)
    ablation_seeds = config.get("ablation", {}).get("seeds", [])
    extra = [s for s in ablation_seeds if s not in config.get("seeds", [])]
    if extra:  # the base optimizer's ablation runs are its headline runs
        raise ConfigError(f"ablation.seeds: {extra} not in seeds {config.get('seeds')}; the ablation reuses the "
                          "base optimizer's headline runs, so its seeds must be a subset of `seeds`")
    for name in config.get("sweep", {}).get("lrs", {}):
        if name not in entries:
            raise ConfigError(f"sweep.lrs: {name!r} is not an optimizer or ablation variant; known: {', '.join(entries)}")
    if config.get("sweep"):
        _check_validation_seeds("sweep.seeds", config["sweep"]["seeds"], list(config.get("seeds", [])))
    if config.get("budget"):
        check_budget(config)
    if config.get("knobs"):
        check_knobs(config)
    if config.get("paper"):
        check_explore(config)
    if config.get("powerprop"):
        check_powerprop(config["powerprop"])
        _check_validation_seeds("powerprop.validation_seeds", config["powerprop"]["validation_seeds"],
                                list(config["powerprop"]["seeds"]))


def check_train_settings(config: dict, entries: dict[str, dict]) -> None:
    """Every entry's train settings (``train_overrides``) against ``optbias.continual.settings``:
    ``batch_order`` an integer >= 0, ``reset_preconditioner`` true or false and only for an optimizer
    type that has the method; and a noise floor's batch order other than the headline runs' own.
    Raises ``ConfigError`` starting with the block to fix."""
    variants = config.get("ablation", {}).get("variants", {})
    controls = noise_floor_controls(config)
    for name, entry in entries.items():
        where = (f"ablation.variants.{name}" if name in variants else "noise_floor" if name in controls
                 else f"train (optimizers.{name})")
        try:
            settings.check(where, entry, train_overrides(config, name))
        except ValueError as err:
            raise ConfigError(str(err) if str(err).startswith(where) else f"{where}: {err}") from None
    if controls:
        order, own = config["noise_floor"]["batch_order"], settings.batch_order(config.get("train", {}))
        if order == own:
            raise ConfigError(f"noise_floor.batch_order: {order} is the headline runs' own batch order "
                              f"(train.batch_order), so the controls would repeat them; choose another")


def check_explore(config: dict) -> None:
    """The explore notebook's parameters (``paper.explore``) must name a benchmark, two optimizers and
    a seed of this config. Raises ``ConfigError`` naming the key and the valid values."""
    params = config["paper"]["explore"]  # the schema fills its defaults
    optimizers = list(config.get("optimizers", {}))
    known = {"benchmark": ("benchmarks", list(config.get("benchmarks", {}))), "a": ("optimizers", optimizers),
             "b": ("optimizers", optimizers), "seed": ("seeds", list(config.get("seeds", [])))}
    for key, (block, values) in known.items():
        if params[key] not in values:
            raise ConfigError(f"paper.explore.{key}: {params[key]!r} is not one of this config's {block} "
                              f"({', '.join(map(str, values))}); set paper.explore.{key} to one of them")
    if params["a"] == params["b"]:
        raise ConfigError(f"paper.explore: a and b are both {params['a']!r}; compare two different optimizers")


def check_budget(config: dict) -> None:
    """Check the ``budget`` block against the rest: one entry per benchmark, experiment seeds among
    ``seeds``, validation seeds not among them. Raises ``ConfigError`` naming the key to fix."""
    budget, seeds = config["budget"], list(config.get("seeds", []))
    names, benches = set(budget["benchmarks"]), set(config.get("benchmarks", {}))
    if names != benches:
        raise ConfigError(f"budget.benchmarks: give exactly the config's benchmarks {sorted(benches)} "
                          f"(missing: {sorted(benches - names)}, unknown: {sorted(names - benches)})")
    extra = [s for s in budget["seeds"] if s not in seeds]
    if extra:  # the experiment reuses the headline runs at the configured budget
        raise ConfigError(f"budget.seeds: {extra} not in seeds {seeds}; the experiment reuses the headline runs at "
                          "the configured budget, so its seeds must be a subset of `seeds`")
    _check_validation_seeds("budget.validation_seeds", budget["validation_seeds"], seeds)
    unknown = [n for n in budget.get("exclude", []) if n not in config.get("optimizers", {})]
    if unknown:
        raise ConfigError(f"budget.exclude: {unknown} are not optimizers of `optimizers` "
                          f"({', '.join(config.get('optimizers', {}))})")
    for name, entry in budget["benchmarks"].items():
        epochs = config["benchmarks"][name]["epochs_per_task"]
        if epochs not in entry["grid"]:
            raise ConfigError(f"benchmarks.{name}.epochs_per_task is {epochs}, not a budget of budget.benchmarks.{name}.grid "
                              f"{entry['grid']}: the budget rule chooses from the grid, so set it to the rule's choice "
                              "(data/budget/selected.json) or add it to the grid")


def check_knobs(config: dict) -> None:
    """Check the ``knobs`` block (the retention rule): each name a headline optimizer whose entry sets
    the option, a value of the grid, and a ``sweep`` block for the seeds; with ``lr_of``, an entry
    whose ``lr`` equals that optimizer's and which the sweep does not tune. Raises ``ConfigError``
    naming the key to fix."""
    if not config.get("sweep"):
        raise ConfigError("knobs: the retention rule runs on the sweep's validation seeds and held-out fraction; "
                          "add a `sweep` block (seeds, validation_fraction, lrs)")
    for name, knob in config["knobs"].items():
        if name not in config.get("optimizers", {}):
            raise ConfigError(f"knobs.{name}: not an optimizer of `optimizers` ({', '.join(config.get('optimizers', {}))})")
        entry, option = config["optimizers"][name], knob["option"]
        if option not in entry:
            raise ConfigError(f"knobs.{name}.option: the entry optimizers.{name} does not set {option!r}; add "
                              f"`{option}: <the rule's choice>` to it (data/knobs/selected.json)")
        labels = [f"{float(v):g}" for v in knob["grid"]]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"knobs.{name}.grid: {knob['grid']} has values that print alike ({labels}), so their runs "
                              "would share a directory; give values that differ in their first 6 significant digits")
        for value in knob["grid"]:  # each candidate must be a value the optimizer takes
            try:
                optim.check(name, {**entry, option: float(value)})
            except optim.OptimizerConfigError as err:
                raise ConfigError(f"knobs.{name}.grid: the candidate {value} is not a valid {option}: {err}") from None
        lr_of = knob.get("lr_of")
        if lr_of is not None:  # takes another optimizer's learning rate, unswept (Memory Shampoo: Shampoo's)
            if lr_of not in config["optimizers"]:
                raise ConfigError(f"knobs.{name}.lr_of: {lr_of!r} is not an optimizer of `optimizers` "
                                  f"({', '.join(config['optimizers'])})")
            if name in config["sweep"].get("lrs", {}):
                raise ConfigError(f"knobs.{name}.lr_of: optimizers.{name} takes {lr_of}'s learning rate, so it is "
                                  f"not swept; remove sweep.lrs.{name}, or remove lr_of")
            if float(entry.get("lr", "nan")) != float(config["optimizers"][lr_of].get("lr", "nan")):
                raise ConfigError(f"optimizers.{name}.lr is {entry.get('lr')}, but knobs.{name}.lr_of says it takes "
                                  f"optimizers.{lr_of}.lr, {config['optimizers'][lr_of].get('lr')}: set it to that")
        if float(entry[option]) not in [float(v) for v in knob["grid"]]:
            raise ConfigError(f"optimizers.{name}.{option} is {entry[option]}, not a value of knobs.{name}.grid "
                              f"{knob['grid']}: the retention rule chooses from the grid, so set it to the rule's "
                              "choice (data/knobs/selected.json) or add it to the grid")


def _check_validation_seeds(key: str, validation: list[int], reported: list[int]) -> None:
    clash = [s for s in validation if s in reported]
    if clash:
        raise ConfigError(f"{key}: {clash} are reported seeds; choose validation seeds outside {reported}")


def check_powerprop(cfg: dict) -> None:
    """Check the ``powerprop`` block: every method can build its optimizer, alphas and pruning levels are valid.

    Raises ``ConfigError`` naming the method and key (e.g. a missing alpha, an lr set in the entry).
    """
    for name, method in cfg["methods"].items():
        if "lr" in method.get("optimizer", {}):
            raise ConfigError(f"powerprop.methods.{name}.optimizer: remove lr; list candidates under "
                              f"powerprop.methods.{name}.lrs and the validation rule picks one")
        entry = {**method.get("optimizer", {}), "lr": method["lrs"][0]}
        try:
            optim.check(f"(powerprop.methods.{name}.optimizer)", entry)
        except optim.OptimizerConfigError as err:
            raise ConfigError(str(err)) from None
        alpha = method.get("reparam_alpha")
        if alpha is not None and not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 1):
            raise ConfigError(f"powerprop.methods.{name}.reparam_alpha must be a number >= 1, got {alpha!r}")
    fractions = cfg.get("prune_fractions", [])
    if any(not 0 <= f <= 1 for f in fractions) or list(fractions) != sorted(fractions):
        raise ConfigError(f"powerprop.prune_fractions must be increasing values in [0, 1], got {fractions}")
