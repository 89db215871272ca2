"""Declared strategies: the link axis tests the outcome a unit declares; bad files name the line."""

from __future__ import annotations

import polars as pl
import pytest

from models.alignment import AlignmentConfig, UnitStrategy, align_units
from models.simulation import SimUnit, simulate_panel
from pipelines.strategy import StrategyError, load_strategy

FAST = AlignmentConfig(secondary_metrics=False, revenue_model=False, permutations=100,
                       bootstrap_replicates=200)  # fmt: skip


@pytest.mark.slow
def test_a_unit_declaring_expansion_is_tested_on_expansion():
    # Growth planted on expansion, not on retention: CX makes accounts grow, not stay.
    panel = simulate_panel(
        [SimUnit("Growth", 4000, execution=0.4, link=0.0, expansion_link=0.6),
         SimUnit("Keep", 4000, execution=0.4, link=0.0, expansion_link=0.6)],
        months=24, seed=5,
    )  # fmt: skip
    units, _, _ = align_units(panel, FAST, {"Growth": UnitStrategy(primary_outcome="expansion")})
    got = {r["business_unit"]: r for r in units.iter_rows(named=True)}
    assert got["Growth"]["outcome_tested"] == "expansion"
    assert got["Keep"]["outcome_tested"] == "retention"
    assert got["Growth"]["link_verdict"] == "strong"
    lo, hi = got["Growth"]["link_ci_low"], got["Growth"]["link_ci_high"]
    assert lo > 0 and hi > 0  # better CX, more expansion
    assert got["Keep"]["link_verdict"] != "strong"  # no retention link was planted


def test_targets_replace_the_company_benchmark():
    panel = simulate_panel([SimUnit("U", 800, execution=0.0), SimUnit("V", 800)], months=12, seed=2)
    easy = {"U": UnitStrategy(targets={"csat": (2.0, 3.0)})}  # CSAT ~3.9 clears it easily
    hard = {"U": UnitStrategy(targets={"csat": (4.8, 4.9)})}
    for strategies, level in ((easy, "high"), (hard, "low")):
        units, _, _ = align_units(panel, FAST, strategies)
        row = units.filter(pl.col("business_unit") == "U").row(0, named=True)
        assert row["execution_benchmark"] == "targets"
        assert row["execution_level"] == level


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("units:\n  Payments:\n    primary_outcome: retention\n  Narnia:\n    primary_outcome: expansion\n",
         "strategy.yaml:4: unknown business unit 'Narnia'"),
        ("units:\n  Payments:\n    primary_outcome: happiness\n",
         "strategy.yaml:3: unit Payments: unknown outcome 'happiness' (one of retention, expansion, cost_to_serve)"),
        ("units:\n  Payments:\n    targets:\n      csat: {floor: 4.5, target: 3.5}\n",
         "strategy.yaml:4: unit Payments: csat target 3.5 must be above its floor 4.5: the range is the wrong way round"),
        ("units:\n  Payments:\n    targets:\n      first_response: {floor: 30, target: 240}\n",
         "strategy.yaml:4: unit Payments: first_response target 240 must be below its floor 30"),
        ("units:\n  Payments:\n    targets:\n      happiness: {floor: 1, target: 2}\n",
         "strategy.yaml:4: unit Payments: unknown metric 'happiness'"),
        ("units:\n  Payments:\n    primary_outcom: retention\n", "strategy.yaml:3: unit Payments: unknown key 'primary_outcom'"),
        ("unit:\n  Payments: {}\n", "strategy.yaml:1: unknown key 'unit'"),
    ],
)  # fmt: skip
def test_invalid_strategy_names_the_line(tmp_path, text, message):
    path = tmp_path / "strategy.yaml"
    path.write_text(text)
    with pytest.raises(StrategyError) as err:
        load_strategy(path, known_units={"Payments", "Payroll"})
    assert message in str(err.value)


def test_valid_strategy_parses(tmp_path):
    path = tmp_path / "strategy.yaml"
    path.write_text(
        "units:\n  Payments:\n    primary_outcome: expansion\n    targets:\n"
        "      nps: {floor: 0, target: 40}\n      first_response: {floor: 480, target: 60}\n"
    )
    got = load_strategy(path, known_units={"Payments"})
    assert got["Payments"] == UnitStrategy(
        "expansion", {"nps": (0.0, 40.0), "first_response": (480.0, 60.0)}
    )
