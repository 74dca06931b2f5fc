"""Grafana alerting as the overlay provisions it, for tests that cannot run Grafana:
`render` runs grafana/alerting-env.sh (the image's entrypoint step) to write the provisioning
files from an environment, and `evaluate` evaluates one provisioned rule the way Grafana's
server-side expressions do, with its data queries run on the ClickHouse engine.

What `evaluate` follows (Grafana's docs "Alerting on numeric data" and its pkg/expr):
* a SQL query in table format with one number column and optionally string columns becomes one
  number per row, labelled by its string columns; any other table is refused here;
* `reduce` of a number is the number ("if incoming vars is just a number, any reduce op is just a
  noop"); of a series, the reducer over it (`last`, `mean`, `max`, `min`, `sum`, `count`);
* `threshold`: 1 when the evaluator (`gt`, `lt`, `within_range`, `outside_range`) holds, else 0;
* `math`: `$REF` operands, + - * /, comparisons and && || giving 1 or 0, per matching labels;
* the condition's instances fire when non-zero; none at all is NoData, mapped by noDataState.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.native_stack.paths import REPO

GRAFANA = REPO / "grafana"
RULES_TEMPLATE = GRAFANA / "alerting" / "rules.yaml"
ALERTING_ENV = GRAFANA / "alerting-env.sh"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Rendered:
    rules_file: dict[str, Any]  # the provisioned rules.yaml
    rules: dict[str, dict[str, Any]]  # uid -> the provisioned rule
    contact_points: dict[str, Any]  # the provisioned contact-points.yaml
    stderr: str


def render(env: Mapping[str, str], out_dir: Path) -> Rendered:
    """Run alerting-env.sh with `env` (the container's environment) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["sh", str(ALERTING_ENV), "true"],
        env={
            "PATH": "/usr/bin:/bin",
            **env,
            "GRAFANA_ALERT_TEMPLATE": str(RULES_TEMPLATE),
            "GRAFANA_ALERT_DIR": str(out_dir),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RenderError(done.returncode, done.stderr)
    doc = yaml.safe_load((out_dir / "rules.yaml").read_text())
    rules = {r["uid"]: r for group in doc["groups"] for r in group["rules"]}
    contact_points = yaml.safe_load((out_dir / "contact-points.yaml").read_text())
    return Rendered(doc, rules, contact_points, done.stderr)


class RenderError(RuntimeError):
    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(f"alerting-env.sh exited {code}: {stderr}")
        self.code, self.stderr = code, stderr


# ---- evaluation ---------------------------------------------------------------------------------

# (meta, rows) of a query in ClickHouse's JSON output, for (rawSql, start, end).
RunQuery = Callable[[str, dt.datetime, dt.datetime], dict[str, Any]]
Values = dict[Labels, float | None]

_NUMBER_TYPES = ("Int", "UInt", "Float", "Decimal")
NO_DATA_STATES = {"OK": "Normal", "Alerting": "Alerting", "NoData": "NoData"}


def _column_kind(ch_type: str) -> str:
    inner = ch_type.removeprefix("Nullable(").removeprefix("LowCardinality(").rstrip(")")
    if inner.startswith(_NUMBER_TYPES):
        return "number"
    if inner.startswith(("String", "FixedString")):
        return "string"
    raise ValueError(f"a column of type {ch_type} is neither a label nor the value")


def numbers_from_table(doc: dict[str, Any]) -> Values:
    """A table-format result as Grafana alerting reads it: one labelled number per row."""
    kinds = {c["name"]: _column_kind(c["type"]) for c in doc["meta"]}
    values = [name for name, kind in kinds.items() if kind == "number"]
    if len(values) != 1:
        raise ValueError(f"the query must return exactly one number column, got {values}")
    out: Values = {}
    for row in doc["data"]:
        labels = tuple(sorted((k, str(v)) for k, v in row.items() if kinds[k] == "string"))
        raw = row[values[0]]
        out[labels] = None if raw is None else float(raw)
    return out


def _reduce(model: dict[str, Any], results: dict[str, Values]) -> Values:
    if model["reducer"] not in ("last", "mean", "max", "min", "sum", "count"):
        raise ValueError(f"reducer {model['reducer']} is not emulated")
    return dict(results[model["expression"]])  # numbers in, numbers out: a no-op


def _holds(kind: str, params: list[float], value: float) -> bool:
    match kind:
        case "gt":
            return value > params[0]
        case "lt":
            return value < params[0]
        case "within_range":
            return params[0] < value < params[1]
        case "outside_range":
            return value < params[0] or value > params[1]
    raise ValueError(f"threshold evaluator {kind} is not emulated")


def _threshold(model: dict[str, Any], results: dict[str, Values]) -> Values:
    (condition,) = model["conditions"]
    if "unloadEvaluator" in condition:
        raise ValueError("threshold hysteresis (unloadEvaluator) is not emulated")
    evaluator = condition["evaluator"]
    params = [float(p) for p in evaluator["params"]]
    return {
        labels: None if v is None else float(_holds(evaluator["type"], params, v))
        for labels, v in results[model["expression"]].items()
    }


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_COMPARE = {
    ast.Gt: operator.gt,
    ast.Lt: operator.lt,
    ast.GtE: operator.ge,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _math_value(node: ast.AST, scope: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(scope[node.id])
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _math_value(node.left, scope), _math_value(node.right, scope)
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        right = _math_value(node.right, scope)
        return math.nan if right == 0 else _math_value(node.left, scope) / right
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        compare = _COMPARE[type(node.ops[0])]
        left, right = _math_value(node.left, scope), _math_value(node.comparators[0], scope)
        return float(compare(left, right))
    if isinstance(node, ast.BoolOp):
        operands = [_math_value(v, scope) != 0 for v in node.values]
        return float(all(operands) if isinstance(node.op, ast.And) else any(operands))
    raise ValueError(f"math syntax not emulated: {ast.dump(node)}")


def _math(model: dict[str, Any], results: dict[str, Values]) -> Values:
    text = model["expression"].replace("&&", " and ").replace("||", " or ")
    tree = ast.parse(text.replace("$", ""), mode="eval").body
    refs = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
    operands = {ref: results[ref] for ref in refs}
    if any(not values for values in operands.values()):
        return {}  # an operand without data: no data
    # Join on labels: an unlabelled number joins every instance (all these rules need).
    label_sets = {labels for values in operands.values() for labels in values if labels} or {()}
    out: Values = {}
    for labels in label_sets:
        scope = {}
        for ref, values in operands.items():
            value = values.get(labels, values.get(()))
            if value is None:
                break
            scope[ref] = value
        else:
            out[labels] = _math_value(tree, scope)
    return out


EXPRESSIONS = {"reduce": _reduce, "threshold": _threshold, "math": _math}


def evaluate(rule: dict[str, Any], run: RunQuery, now: dt.datetime) -> dict[Labels, str]:
    """The state of each alert instance of `rule` at `now`: Alerting, Normal or NoData."""
    results: dict[str, Values] = {}
    for step in rule["data"]:
        model = step["model"]
        if step["datasourceUid"] == "__expr__":
            results[step["refId"]] = EXPRESSIONS[model["type"]](model, results)
            continue
        window = step["relativeTimeRange"]
        start = now - dt.timedelta(seconds=window["from"])
        end = now - dt.timedelta(seconds=window["to"])
        results[step["refId"]] = numbers_from_table(run(model["rawSql"], start, end))
    condition = results[rule["condition"]]
    if not condition:
        return {(): NO_DATA_STATES[rule["noDataState"]]}
    return {
        labels: "Alerting" if v is not None and not math.isnan(v) and v != 0 else "Normal"
        for labels, v in condition.items()
    }


def threshold_of(rule: dict[str, Any]) -> float:
    """The number the rule's threshold expression compares with (as provisioned)."""
    (step,) = [s for s in rule["data"] if s["model"].get("type") == "threshold"]
    return float(step["model"]["conditions"][0]["evaluator"]["params"][0])


def documented_env() -> dict[str, str]:
    """The GRAFANA_ALERT_* settings as .env.example documents them (the thresholds' defaults,
    which tests/overlays/test_alert_rules.py proves equal to grafana/compose.yaml's; no contact
    point): the container's alerting environment with an untouched .env."""
    from scripts.envfile.spec import load_key_spec

    optional = load_key_spec(REPO).optional
    return {k: v for k, v in optional.items() if k.startswith("GRAFANA_ALERT_")}


def overlay_project(work_dir: Path) -> dict[str, Any]:
    """The project compose's own loader gives for the Grafana overlay with the .env `make init`
    writes (in `work_dir`): the grafana service's environment is what the container gets."""
    from scripts.envfile.init import render as render_env
    from scripts.native_stack.compose_project import load_project

    text, _ = render_env((REPO / ".env.example").read_text())
    env_file = work_dir / ".env"
    env_file.write_text(text)
    return load_project(env_file, ("docker-compose.yml", "grafana/compose.yaml"))
