"""strategy.yaml: what each business unit's CX is for.

A value brand and a premium brand should not be judged on the same outcome. Each unit may
declare the outcome its CX should move and the CX targets it holds itself to:

    units:
      Payments:
        primary_outcome: retention          # retention (default) | expansion | cost_to_serve
        targets:                            # optional: execution against these, not the company
          csat: {floor: 3.8, target: 4.5}   # CSAT 1-5
          first_response: {floor: 480, target: 60}   # minutes: lower is better
          nps: {floor: 0, target: 40}       # NPS points
      Analytics:
        primary_outcome: expansion

Every mistake is reported with the file and line: an unknown unit, an unknown outcome or
metric, a target range the wrong way round.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from models.alignment import METRICS, OUTCOMES, UnitStrategy, target_problem


class StrategyError(ValueError):
    """strategy.yaml breaks a rule; the message names the file and line."""


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.Node, path: Path, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise StrategyError(f"{path}:{_line(node)}: {what} must be a mapping")
    return node.value


def _number(node: yaml.Node, path: Path, what: str) -> float:
    try:
        return float(node.value)
    except (TypeError, ValueError):
        raise StrategyError(
            f"{path}:{_line(node)}: {what} must be a number, not {node.value!r}"
        ) from None


def load_strategy(path: str | Path, known_units: set[str] | None = None) -> dict[str, UnitStrategy]:
    """Parse and check a strategy file; `known_units` (if given) are the units in the data."""
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StrategyError(f"{path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise StrategyError(f"{path}: not valid YAML: {exc}") from exc
    if root is None:
        return {}
    top = dict((k.value, (k, v)) for k, v in _mapping(root, path, "the file"))
    for key, (knode, _) in top.items():
        if key != "units":
            raise StrategyError(f"{path}:{_line(knode)}: unknown key {key!r} (expected: units)")
    if "units" not in top:
        return {}
    out: dict[str, UnitStrategy] = {}
    for unode, body in _mapping(top["units"][1], path, "units"):
        unit = unode.value
        if known_units is not None and unit not in known_units:
            raise StrategyError(
                f"{path}:{_line(unode)}: unknown business unit {unit!r} "
                f"(the data has {', '.join(sorted(known_units))})"
            )
        outcome, targets = "retention", {}
        for knode, vnode in _mapping(body, path, f"unit {unit}"):
            if knode.value == "primary_outcome":
                outcome = vnode.value
                if outcome not in OUTCOMES:
                    raise StrategyError(
                        f"{path}:{_line(vnode)}: unit {unit}: unknown outcome {outcome!r} "
                        f"(one of {', '.join(OUTCOMES)})"
                    )
            elif knode.value == "targets":
                for mnode, tnode in _mapping(vnode, path, f"unit {unit} targets"):
                    metric = mnode.value
                    if metric not in METRICS:
                        raise StrategyError(
                            f"{path}:{_line(mnode)}: unit {unit}: {target_problem(metric, 0, 1)}"
                        )
                    fields = {k.value: v for k, v in _mapping(tnode, path, f"{metric} target")}
                    if set(fields) != {"floor", "target"}:
                        raise StrategyError(
                            f"{path}:{_line(tnode)}: unit {unit}: {metric} needs exactly floor and target"
                        )
                    floor = _number(fields["floor"], path, f"{metric} floor")
                    target = _number(fields["target"], path, f"{metric} target")
                    problem = target_problem(metric, floor, target)
                    if problem:
                        raise StrategyError(f"{path}:{_line(tnode)}: unit {unit}: {problem}")
                    targets[metric] = (floor, target)
            else:
                raise StrategyError(
                    f"{path}:{_line(knode)}: unit {unit}: unknown key {knode.value!r} "
                    "(primary_outcome, targets)"
                )
        out[unit] = UnitStrategy(primary_outcome=outcome, targets=targets)
    return out
