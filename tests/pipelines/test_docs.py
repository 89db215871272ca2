from pipelines.docs import DICTIONARY, render_data_dictionary
from pipelines.marts import analyst_contracts


def test_data_dictionary_is_current():
    assert DICTIONARY.read_text(encoding="utf-8") == render_data_dictionary(), (
        "docs/data_dictionary.md is out of date: run `cxalign data-dictionary`"
    )


def test_every_analyst_table_and_column_is_described():
    for contract in analyst_contracts().values():
        assert contract.description, contract.name
        for c in contract.columns:
            assert c.description, f"{contract.name}.{c.name}"
            assert f"| `{c.name}` |" in render_data_dictionary()
