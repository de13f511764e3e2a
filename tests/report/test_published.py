"""The shipped survey tables and what they say on their own, recomputed from the numbers."""

from __future__ import annotations

import math

import pytest

from losslab.losses import create_loss
from losslab.report.published import load_published, own_numbers, own_numbers_text, published_names, runs


def test_the_survey_tables_ship_with_the_package():
    assert "yolact_loss_survey" in published_names()
    data = load_published("yolact_loss_survey")
    assert set(data["tables"]) == {"README", "Table I", "Table II", "Table III"}
    assert len(data["tables"]["Table III"]["rows"]) == 12
    for body in data["tables"].values():
        for row in body["rows"]:
            create_loss(row["as_run"])  # every row names a loss losslab can train


def test_a_number_printed_in_several_tables_is_one_run():
    bce = [r for r in runs(load_published("yolact_loss_survey")) if r["as_run"] == "bce" and r["batch"] == 8]
    assert sorted(r["AP"] for r in bce) == [79.21, 83.65]  # README BCE = Table I batch 8 = Table II BCE


def test_own_numbers_match_a_hand_computation():
    own = own_numbers("yolact_loss_survey")
    groups = {loss: sorted(r["AP"] for r in g) for (loss, _), g in own.groups.items()}
    assert groups == {
        "bce": [79.21, 83.65],  # the "MSE" row trained BCE
        "0.5*mse": [76.74, 79.03, 80.53],  # Huber δ = 1, 2, 3
        "bce + 0.5*uncropped(mse)": [81.36, 84.43],  # HL + BCE α=1 and the claimed winner
        "bce + uncropped(mse)": [80.54, 82.37],  # MSE + BCE α=1 and HL + BCE α=2
    }
    ss = sum(sum((x - sum(v) / len(v)) ** 2 for x in v) for v in groups.values())
    assert own.df == 5 and own.sd == pytest.approx(math.sqrt(ss / 5))
    assert own.spread == pytest.approx(4.44)
    assert own.claimed["AP"] - own.baseline["AP"] == pytest.approx(0.78)
    assert own.best["AP"] == 84.67 and own.best["batch"] == 16
    # 2 (1.96 + 0.84)^2 sd^2 / 0.78^2 runs per loss
    assert own.runs_needed(0.78) == math.ceil(2 * (1.959964 + 0.841621) ** 2 * own.sd**2 / 0.78**2)


def test_own_numbers_text_states_the_spread_and_the_claim():
    text = own_numbers_text("yolact_loss_survey")
    md = text.markdown()
    assert "4.44" in md and "+0.78" in md and "84.67" in md
    assert len(text.rows) == 4 and text.header[0] == "loss as run"


def test_unknown_published_name_is_refused_with_the_shipped_ones():
    with pytest.raises(ValueError, match="yolact_loss_survey"):
        load_published("yolact_survey")
