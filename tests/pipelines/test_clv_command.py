"""`cxalign clv` on the published examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.clv.cdnow import read_cdnow
from pipelines.cli import main

CDNOW = Path(__file__).parents[1] / "fixtures" / "cdnow" / "CDNOW_sample.txt"


def test_clv_transactions_json_and_predictions(tmp_path, capsys):
    csv = tmp_path / "cdnow.csv"
    read_cdnow(CDNOW).write_csv(csv)
    out = tmp_path / "pred.csv"
    assert main(["clv", "--transactions", str(csv), "--calibration-end", "1997-09-30", "--json",
                 "--predictions", str(out)]) == 0  # fmt: skip
    got = json.loads(capsys.readouterr().out)
    for key, value in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426,
                       "p": 6.25, "q": 3.74, "gamma": 15.44}.items():  # fmt: skip
        assert got[key] == pytest.approx(value, rel=0.01), key
    assert got["loglik_bgnbd"] == pytest.approx(-9582.4, abs=0.1)
    assert "loglik_gg" in got
    # Fader & Hardie's note on the Gamma-Gamma model reports 0.11 for these repeat buyers: the
    # independence the model assumes roughly holds.
    assert got["spend_frequency_correlation"] == pytest.approx(0.11, abs=0.01)
    header = out.read_text().splitlines()[0].split(",")
    assert {"customer_id", "expected_purchases", "p_alive", "expected_spend"} <= set(header)
    assert len(out.read_text().splitlines()) == 2357 + 1


def test_clv_survival_json(capsys):
    assert main(["clv", "--survival", "1000,631,468,382,326,289,262,241", "--json",
                 "--discount", "0.1", "--renewals", "0"]) == 0  # fmt: skip
    got = json.loads(capsys.readouterr().out)
    assert got["alpha"] == pytest.approx(0.704, rel=0.005)
    assert got["beta"] == pytest.approx(1.182, rel=0.005)
    assert got["loglik"] == pytest.approx(-1680.27, abs=0.01)
    assert got["derl"] > 1


def test_clv_bad_input_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer,date,amount\n1,2024-01-01,5\n")
    assert main(["clv", "--transactions", str(bad), "--calibration-end", "2024-02-01"]) == 2
    assert "bad.csv: transactions lack column(s) customer_id" in capsys.readouterr().err
    assert main(["clv", "--survival", "1000,1200"]) == 2
    assert "never increase" in capsys.readouterr().err
