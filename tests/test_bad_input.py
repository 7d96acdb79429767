"""Bad input, tried systematically (issue 16): invalid configs, NaN in outputs, damaged checkpoints.

* Configs: hypothesis draws invalid configs from the real schema (a value the key's subschema
  rejects, drawn by hypothesis-jsonschema; a required key dropped; an unknown key; a name that
  cannot be part of a path; a key YAML read as a boolean, number or null; a number written as
  text; a non-finite number) and every one must be rejected by ``optbias.config.validate``, the
  function the Snakefile calls before it builds the DAG, with a message that names the key. The
  count tried is printed (``pytest -s``) and recorded (``record_property``, in ``--junitxml``).
  A few kinds also go through a real ``snakemake -n``: it stops, names the key, schedules nothing.
* JSON outputs refuse NaN and infinity, naming the field; nothing is written.
* A truncated or corrupted checkpoint is refused by every reader, naming the file and the command
  that rebuilds it.
"""

from __future__ import annotations

import copy
import functools
import io
import math
import re
import sys
from collections import Counter
from pathlib import Path

sys.modules.setdefault("rfc3987_syntax", None)  # as common.smk does: jsonschema imports it (3 s) for nothing

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from conftest import TINY_CONFIG, full_config, scheduled, snakemake, write_config
from optbias import config as cfgmod
from optbias import fileio, job
from optbias.config import ConfigError, key_path
from optbias.probes import run as probe_run
from optbias.probes import weights as probe_weights

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = cfgmod.load_schema(str(SCHEMA_PATH))
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]*$"  # the schema's propertyNames of optimizers, variants, methods


# ---- invalid configs, drawn from the schema --------------------------------------------------------


def _base_config() -> dict:
    """A valid config with every block of the schema in it (defaults filled), so every key can be hit."""
    config = full_config()
    config["train"].update(validation_fraction=0.1, on_divergence="fail", batch_order=2, reset_preconditioner=False)
    config["data"].update(idx_dir="data/raw/idx", fashion_dir="data/raw/fashion")
    config["powerprop"]["histogram"] = {"low": -8, "high": 1, "bins": 45}
    config["benchmarks"]["class_incremental"]["pairs"] = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    config["probes"] = {"linear_probe_pairs": {"class_incremental": "final", "permuted": "diagonal_and_final"}}
    config["paper"]["datasets"] = {"Fashion-MNIST": "paper/fashion/verdicts.json"}
    cfgmod.validate(config, SCHEMA_PATH)  # fills every default
    return config


BASE = _base_config()


def _nodes(schema: dict, value, path: tuple = ()):
    """(path, subschema, value) of every value of ``value`` that ``schema`` describes, depth first."""
    yield path, schema, value
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, sub_value in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _nodes(sub, sub_value, (*path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, sub_value in enumerate(value):
            yield from _nodes(schema["items"], sub_value, (*path, i))


NODES = [n for n in _nodes(SCHEMA, BASE) if n[0]]  # every key of the base config, the root left out
REQUIRED = [(p, s, v) for p, s, v in [((), SCHEMA, BASE), *NODES] if s.get("required") and isinstance(v, dict)]
CLOSED = [(p, s, v) for p, s, v in [((), SCHEMA, BASE), *NODES]
          if s.get("additionalProperties") is False and isinstance(v, dict)]
NAMED = [(p, s, v) for p, s, v in NODES if "propertyNames" in s and isinstance(v, dict) and v]
NUMBERS = [(p, s, v) for p, s, v in NODES if isinstance(v, (int, float)) and not isinstance(v, bool)]
MAPPINGS = [(p, s, v) for p, s, v in [((), SCHEMA, BASE), *NODES] if isinstance(v, dict)]
KINDS = ("wrong value", "required key dropped", "unknown key", "bad name", "key not text", "number as text",
         "non-finite number")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)


@functools.lru_cache(maxsize=None)
def _rejected_by(path: tuple):
    """Values the subschema of ``path`` rejects (hypothesis-jsonschema on ``{"not": subschema}``)."""
    sub = next(s for p, s, _ in NODES if p == path)
    return from_schema({"not": {k: v for k, v in sub.items() if k not in ("default", "description")}})


def _set(config: dict, path: tuple, value) -> None:
    node = config
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _get(config: dict, path: tuple):
    node = config
    for part in path:
        node = node[part]
    return node


def _draw_invalid(data) -> tuple[str, dict, str]:
    """(kind, an invalid config, the key path its message must name)."""
    import jsonschema

    config = copy.deepcopy(BASE)
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    if kind == "wrong value":
        path, sub, _ = data.draw(st.sampled_from(NODES), label="key")
        value = data.draw(_rejected_by(path), label="value")
        # hypothesis-jsonschema and jsonschema could differ on an edge (2.0 as an integer): keep only
        # values the validator itself rejects, or the config is not invalid
        assume(not jsonschema.validators.validator_for(SCHEMA)(sub).is_valid(value))
        _set(config, path, value)
        return kind, config, key_path(path)
    if kind == "required key dropped":
        path, sub, value = data.draw(st.sampled_from(REQUIRED), label="object")
        key = data.draw(st.sampled_from([k for k in sub["required"] if k in value]), label="key")
        del _get(config, path)[key]
        return kind, config, key_path((*path, key))
    if kind == "unknown key":
        path, sub, value = data.draw(st.sampled_from(CLOSED), label="object")
        known = sub.get("properties", {})
        key = data.draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in known), label="key")
        _get(config, path)[key] = data.draw(JSON_VALUES, label="value")
        return kind, config, key_path((*path, key))
    if kind == "bad name":
        path, sub, value = data.draw(st.sampled_from(NAMED), label="object")
        name = data.draw(st.text(min_size=0, max_size=12).filter(lambda k: not re.fullmatch(NAME_PATTERN, k))
                         | st.sampled_from(["adam/x", "adam x", "../up", ".hidden", "-x"]), label="name")
        assume(name not in value)
        _get(config, path)[name] = copy.deepcopy(next(iter(value.values())))  # only the name is wrong
        return kind, config, f"{key_path(path)}: the name {name!r}"
    if kind == "key not text":  # YAML reads `no:` as the key False, `2:` as 2, `~:` as None
        path, sub, value = data.draw(st.sampled_from(MAPPINGS), label="mapping")
        key = data.draw(st.booleans() | st.none() | st.integers() | st.floats(allow_nan=False), label="key")
        _get(config, path)[key] = copy.deepcopy(next(iter(value.values()), None))
        return kind, config, f"{key_path(path)}: the key {key!r}"
    path, sub, value = data.draw(st.sampled_from(NUMBERS), label="number")
    if kind == "number as text":
        text = data.draw(st.sampled_from([repr(value), f"{value:g}", f"{float(value):.0e}".replace("e-0", "e-")]),
                         label="text")
        _set(config, path, text)
        return kind, config, key_path(path)
    _set(config, path, data.draw(st.sampled_from([math.inf, -math.inf, math.nan]), label="value"))
    return kind, config, key_path(path)


def test_invalid_configs_drawn_from_the_schema_are_rejected_naming_the_key(record_property):
    tried: Counter = Counter()

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(st.data())
    def rejected(data):
        kind, config, key = _draw_invalid(data)
        with pytest.raises(ConfigError) as err:
            cfgmod.validate(config, SCHEMA_PATH)
        assert key in str(err.value), f"{kind}: the message does not name {key}:\n{err.value}"
        if kind == "number as text":
            assert "write " in str(err.value), str(err.value)
        tried[kind] += 1

    rejected()
    total = sum(tried.values())
    record_property("invalid_configs_tried", total)
    record_property("invalid_configs_by_kind", dict(tried))
    print(f"\n{total} invalid configs tried, all rejected naming the key: {dict(tried)}")
    assert total >= 200 and set(tried) == set(KINDS), tried


def _shape(path: tuple, schema: dict = SCHEMA) -> tuple:
    """``path`` with its wildcards: an optimizer's name (additionalProperties) as ``*``, a list position as ``[]``."""
    out = []
    for part in path:
        if isinstance(part, int):
            out.append("[]")
            schema = schema["items"]
        elif part in schema.get("properties", {}):
            out.append(part)
            schema = schema["properties"][part]
        else:
            out.append("*")
            schema = schema["additionalProperties"]
    return tuple(out)


def _schema_shapes(schema: dict, path: tuple = ()):
    for key, sub in schema.get("properties", {}).items():
        yield (*path, key)
        yield from _schema_shapes(sub, (*path, key))
    if isinstance(schema.get("additionalProperties"), dict):
        yield (*path, "*")
        yield from _schema_shapes(schema["additionalProperties"], (*path, "*"))
    if isinstance(schema.get("items"), dict):
        yield (*path, "[]")
        yield from _schema_shapes(schema["items"], (*path, "[]"))


def test_the_drawn_configs_can_hit_every_key_of_the_schema():
    """The base config has every key the schema describes, so the draws can hit each one."""
    hit = {_shape(path) for path, _, _ in NODES}
    hit.add(("benchmarks", "*"))  # a benchmark the schema does not name: config.check refuses it (test_workflow.py)
    missing = sorted(shape for shape in _schema_shapes(SCHEMA) if shape not in hit)
    assert not missing, missing


@pytest.mark.parametrize("text, fixed", [("1e-3", "1.0e-3"), ("1.0e3", "1.0e+3"), ("-2E-4", "-2.0e-4")])
def test_a_number_yaml_reads_as_text_says_how_to_write_it(text, fixed):
    config = copy.deepcopy(TINY_CONFIG)
    config["optimizers"]["adam-1e-3"]["lr"] = text
    with pytest.raises(ConfigError, match=re.escape(f"optimizers.adam-1e-3.lr: {text!r} is text, not a number: "
                                                    f"write {fixed}")):
        cfgmod.validate(config, SCHEMA_PATH)
    import yaml

    assert yaml.safe_load(f"lr: {fixed}")["lr"] == float(text)  # the fix reads as the number meant


def test_every_problem_is_listed_one_line_each():
    config = copy.deepcopy(TINY_CONFIG)
    config["train"]["epochs"] = 3
    config["seeds"] = [0, -1]
    with pytest.raises(ConfigError) as err:
        cfgmod.validate(config, SCHEMA_PATH)
    lines = str(err.value).splitlines()
    assert lines[0] == "the config has 2 problems:"
    assert lines[1].strip() == "seeds[1]: -1 is less than the minimum of 0"
    assert lines[2].strip().startswith("train.epochs: unknown key; known keys here: device, threads")


def test_validate_fills_defaults_without_sharing_them_between_configs():
    a, b = copy.deepcopy(TINY_CONFIG), copy.deepcopy(TINY_CONFIG)
    del a["data"], b["data"]
    cfgmod.validate(a, SCHEMA_PATH)
    a["data"]["test_fraction"] = 0.5
    cfgmod.validate(b, SCHEMA_PATH)
    assert b["data"] == {"test_fraction": 0.2, "split_seed": 0, "download_dir": "data/raw/download"}
    assert b["probes"]["probe_set_per_class"] == 50


@pytest.mark.parametrize("make", [lambda: copy.deepcopy(TINY_CONFIG), full_config], ids=["tiny", "full"])
def test_validate_fills_the_defaults_snakemake_validate_fills(make):
    """The Snakefile used ``snakemake.utils.validate``; its replacement leaves the same config behind."""
    from snakemake.utils import validate

    ours, theirs = make(), make()
    cfgmod.validate(ours, SCHEMA_PATH)
    validate(theirs, str(SCHEMA_PATH))
    assert ours == theirs


def _tiny(mutate) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    mutate(config)
    return config


@pytest.mark.parametrize("config, message", [
    (_tiny(lambda c: c["optimizers"]["adam-1e-3"].update(lr="1e-3")),
     "optimizers.adam-1e-3.lr: '1e-3' is text, not a number: write 1.0e-3"),
    (_tiny(lambda c: c["optimizers"].update({"adam/x": {"type": "adam", "lr": 1.0e-3},
                                             "adam x": {"type": "sgd", "lr": 0.1}})),
     "optimizers: the name 'adam/x' is not allowed"),
    (_tiny(lambda c: c["model"].pop("hidden")), "model.hidden: missing (required)"),
    (_tiny(lambda c: c["optimizers"]["sgd"].update(lr=math.inf)), "optimizers.sgd.lr: inf is not a finite number"),
    ("  no: {type: sgd, lr: 0.1}\n", "optimizers: the key False is a boolean, not text"),
], ids=["number-as-text", "slash-and-space-in-names", "required-key-dropped", "non-finite", "yaml-no-as-a-name"])
def test_snakemake_stops_before_any_job_naming_the_key(tmp_path, config, message):
    path = write_config(tmp_path, config if isinstance(config, dict) else TINY_CONFIG)  # 1e-3 quoted, inf as .inf
    if isinstance(config, str):  # YAML text put first in the optimizers block
        path.write_text(path.read_text().replace("optimizers:\n", "optimizers:\n" + config, 1))
    proc = snakemake(tmp_path, "-n", "--cores", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert message in out, out
    if "adam/x" in message:
        assert "optimizers: the name 'adam x' is not allowed" in out, out
    assert scheduled(out) == {} and not (tmp_path / "data").exists()


def test_an_optimizer_named_like_a_sweep_directory_builds_an_unambiguous_dag(tmp_path):
    """``adam.lr0.001`` next to ``adam``, whose sweep writes ``data/sweep/<b>/adam/lr0.001``: no clash."""
    config = copy.deepcopy(TINY_CONFIG)
    config["optimizers"] = {"adam": {"type": "adam", "lr": 1.0e-3}, "adam.lr0.001": {"type": "adam", "lr": 1.0e-3}}
    config["sweep"]["lrs"] = {"adam": [0.001, 0.01], "adam.lr0.001": [0.001]}
    del config["ablation"]
    write_config(tmp_path, config)
    proc = snakemake(tmp_path, "-n", "--cores", "1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Ambiguous" not in out
    jobs = scheduled(out)
    assert jobs["train"] == 4 and jobs["sweep_train"] == 6, jobs  # 2 benchmarks x (2 optimizers; 3 candidates)
    for benchmark in config["benchmarks"]:
        assert f"train {benchmark}/adam.lr0.001:" in out and f"train {benchmark}/adam:" in out


# ---- NaN and infinity in JSON outputs --------------------------------------------------------------


def test_json_outputs_refuse_nan_and_infinity_naming_the_field(tmp_path):
    target = tmp_path / "summary.json"
    obj = {"R": [[0.9, 0.1], [0.8, 0.9], [0.5, math.inf]], "summary": {"sgd": {"forgetting": {"mean": math.nan}}},
           "ok": 1.5}
    with pytest.raises(ValueError) as err:
        fileio.atomic_write_json(target, obj)
    assert str(err.value) == (f"{target}: not written, JSON has no NaN or infinity: R[2][1] = inf, "
                              "summary.sgd.forgetting.mean = nan")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
    with pytest.raises(ValueError, match=re.escape(r"[1] = -inf")):
        fileio.atomic_write_json(target, [1.0, -math.inf])
    assert job.is_known_error(err.value)  # a job ends with this one line


def test_non_finite_fields_by_hand():
    assert fileio.non_finite_fields({"a": [1.0, {"b": (math.nan, 2)}], "c": -math.inf, "d": "nan"}) == \
        [("a[1].b[0]", pytest.approx(math.nan, nan_ok=True)), ("c", -math.inf)]
    assert fileio.non_finite_fields(math.nan)[0][0] == "(the value)"
    assert fileio.non_finite_fields({"x": [0, 1e308, "inf", None, True]}) == []


def test_finite_json_is_written_as_before(tmp_path):
    fileio.atomic_write_json(tmp_path / "a.json", {"b": [1.0, 2], "a": None})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": null,\n  "b": [\n    1.0,\n    2\n  ]\n}\n'


# ---- damaged checkpoints -----------------------------------------------------------------------------

RUN_DIR = Path("data/runs/permuted/sgd/seed0/checkpoints")


def _state_dict(hidden: int = 8) -> dict[str, torch.Tensor]:
    from optbias.models import init_model

    return init_model(0, {"hidden": [hidden]}).state_dict()


def _saved(tmp_path: Path, rel: Path = RUN_DIR / "task0.pt") -> Path:
    path = tmp_path / rel
    fileio.atomic_torch_save(_state_dict(), path)
    return path


def _truncate_half(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _truncate_tail(raw: bytes) -> bytes:
    return raw[:-10]


def _empty(raw: bytes) -> bytes:
    return b""


def _random(raw: bytes) -> bytes:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (len(raw),), generator=generator, dtype=torch.uint8).numpy().tobytes()


def _flip_middle(raw: bytes) -> bytes:  # torch.load alone reads this one without complaint
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0xFF
    return bytes(damaged)


DAMAGES = [_truncate_half, _truncate_tail, _empty, _random, _flip_middle]


def _damage(path: Path, how) -> None:
    path.write_bytes(how(path.read_bytes()))


def test_a_sound_checkpoint_loads(tmp_path):
    path = _saved(tmp_path)
    state = fileio.load_checkpoint(path)
    assert state.keys() == _state_dict().keys() and all(torch.equal(state[k], _state_dict()[k]) for k in state)


@pytest.mark.parametrize("how", DAMAGES, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_checkpoint_names_the_file_and_the_command(tmp_path, how):
    path = _saved(tmp_path)
    _damage(path, how)
    fix = f"snakemake --cores all --forcerun {path.parent}"  # the train rule's declared output
    for read in (lambda: fileio.load_checkpoint(path), lambda: probe_run.load_model(path, {"hidden": [8]})):
        with pytest.raises(fileio.CheckpointError) as err:
            read()
        assert str(path) in str(err.value) and fix in str(err.value) and "truncated or corrupted" in str(err.value)
        assert len(str(err.value).splitlines()) == 1 and job.is_known_error(err.value)


@pytest.mark.parametrize("how", [_truncate_tail, _random], ids=["truncated", "random"])
def test_the_weight_distance_names_a_damaged_final_checkpoint(tmp_path, how):
    runs, dirs = [], []
    for name in ("sgd", "adam"):
        ckpt_dir = tmp_path / f"data/runs/permuted/{name}/seed0/checkpoints"
        for task in range(2):
            fileio.atomic_torch_save(_state_dict(), fileio.checkpoint_path(ckpt_dir, task))
        runs.append({"benchmark": "permuted", "optimizer": name, "seed": 0, "status": "ok",
                     "R": [[1.0, 0.1], [0.9, 1.0]], "spec": {"model": {"hidden": [8]}}})
        dirs.append(ckpt_dir)
    probe_weights.weight_distances(runs, dirs, ["sgd", "adam"])  # sound: no error
    final = fileio.checkpoint_path(dirs[1], 1)
    _damage(final, how)
    with pytest.raises(fileio.CheckpointError, match=re.escape(f"checkpoint {final} cannot be read")) as err:
        probe_weights.weight_distances(runs, dirs, ["sgd", "adam"])
    assert f"snakemake --cores all --forcerun {dirs[1]}" in str(err.value)


@pytest.mark.parametrize("how", [_truncate_half, _random], ids=["truncated", "random"])
def test_a_damaged_powerprop_checkpoint_names_its_own_file_as_the_target(tmp_path, how):
    """Powerprop's seed<k>.pt is an output of its own (the pipeline writes it; nothing in it reads it back)."""
    path = _saved(tmp_path, Path("data/powerprop/runs/sgd/seed0.pt"))
    _damage(path, how)
    with pytest.raises(fileio.CheckpointError, match=re.escape(f"snakemake --cores all --forcerun {path}`")):
        fileio.load_checkpoint(path)


def test_a_missing_or_foreign_checkpoint_says_so(tmp_path):
    path = tmp_path / RUN_DIR / "task0.pt"
    with pytest.raises(fileio.CheckpointError, match=re.escape(f"checkpoint {path} is missing: rebuild it with "
                                                               f"`snakemake --cores all --forcerun {path.parent}`")):
        fileio.load_checkpoint(path)
    fileio.atomic_torch_save([torch.zeros(2)], path)
    with pytest.raises(fileio.CheckpointError, match="holds a list, not a state_dict"):
        fileio.load_checkpoint(path)
    buffer = io.BytesIO()
    torch.save({"model": _state_dict(), "epoch": 3}, buffer)  # a training checkpoint, not a state_dict
    path.write_bytes(buffer.getvalue())
    with pytest.raises(fileio.CheckpointError, match="not a state_dict"):
        fileio.load_checkpoint(path)


def test_a_config_without_a_train_block_gets_every_train_default():
    """`train` is optional because every key in it has a default; a key the schema both requires and
    defaults could never be missing, so none may be both (found by the drawn configs above)."""
    import yaml

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    config = copy.deepcopy(TINY_CONFIG)
    del config["train"]
    cfgmod.validate(config, SCHEMA_PATH)
    assert config["train"] == {"device": "auto", "threads": 1, "reset_optimizer": False, "loss_log_every": 10,
                               "batch_seeds": "auto"}

    def both(node, path=()):  # every (required and defaulted) key anywhere in the schema
        if isinstance(node, dict):
            props = node.get("properties", {})
            yield from ((*path, k) for k in node.get("required", []) if "default" in props.get(k, {}))
            for k, v in node.items():
                yield from both(v, (*path, k))
        elif isinstance(node, list):
            for v in node:
                yield from both(v, path)

    assert list(both(schema)) == []
