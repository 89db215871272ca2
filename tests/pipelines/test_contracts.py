from pathlib import Path

import pytest

from pipelines.contracts import ContractError, load_contract_file, row_rules, source_contracts


def test_source_contracts_load_in_reference_order():
    names = list(source_contracts())
    assert names[0] == "accounts"
    assert set(names) == {
        "accounts", "survey_responses", "support_tickets", "revenue", "churn_events", "support_costs",
        "transactions",
    }  # fmt: skip
    assert source_contracts()["support_costs"].optional
    assert not source_contracts()["revenue"].optional


def test_every_rule_of_contract_v1_is_compiled():
    rules = {(r.column, r.rule) for c in source_contracts().values() for r in row_rules(c)}
    for expected in [
        ("score", "range_by_survey_type"),
        ("survey_type", "allowed_values"),
        ("responded_at", "after_as_of"),
        ("solved_at", "time_order"),
        ("first_response_at", "time_order"),
        ("reopens", "range"),
        ("first_contact_resolution", "type"),
        ("currency", "pattern"),
        ("currency", "reporting_currency"),
        ("month", "type"),
        ("business_unit", "required"),
    ]:
        assert expected in rules


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "thing.yml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: thing\nkind: source\ncolumns:\n  - {name: a, type: text, colour: red}\n",
         "thing.yml: column a: unknown key 'colour'"),
        ("name: thing\nkind: source\ncolumns:\n  - {name: a, type: texty}\n",
         "unknown type 'texty'"),
        ("name: thing\nkind: source\ncolumns:\n  - name: s\n    type: integer\n    range_by:\n"
         "      column: s\n      ranges: {nps: [10, 0]}\n", "range for nps is the wrong way round"),
        ("name: thing\nkind: source\nkey: [b]\ncolumns:\n  - {name: a, type: text}\n",
         "key column 'b' is not a column"),
        ("name: thing\nkind: view\ncolumns: []\n", "kind must be source or table"),
    ],
)  # fmt: skip
def test_malformed_contracts_are_refused_with_file_and_key(tmp_path, text, message):
    with pytest.raises(ContractError, match="thing.yml") as err:
        load_contract_file(_write(tmp_path, text))
    assert message in str(err.value)
