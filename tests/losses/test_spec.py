"""The spec language, the factory and the hybrid: parsing, canonical form, helpful errors with the
position, equivalence warnings (and that each claimed equivalence really holds), shared inputs."""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from losslab.losses import (
    HybridLoss,
    LossEquivalenceWarning,
    SpecError,
    create_loss,
    format_spec,
    get_loss_info,
    list_losses,
    loss_terms,
    parse_spec,
)

# --- parsing --------------------------------------------------------------------------------------


def test_parse_terms_weights_and_params():
    terms = parse_spec(" 0.5 * mse+bce*2 + huber(delta=2) + 1e-1*dice(squared=true, smooth=0.5) ")
    assert [(t.weight, t.name, t.params) for t in terms] == [
        (0.5, "mse", {}),
        (2.0, "bce", {}),
        (1.0, "huber", {"delta": 2}),
        (0.1, "dice", {"squared": True, "smooth": 0.5}),
    ]


@pytest.mark.parametrize(
    "spec", ["bce", "0.5*mse + bce", "huber(delta=2) + 0.5*dice(squared=true)", "2*tversky(alpha=0.3)"]
)
def test_format_round_trip(spec):
    terms = parse_spec(spec)
    assert format_spec(terms) == spec
    assert parse_spec(format_spec(terms)) == terms


def test_created_loss_carries_canonical_spec():
    loss = create_loss("0.5 *mse+  bce")
    assert loss.spec == "0.5*mse + bce"
    assert create_loss("dice(squared=TRUE)").spec == "dice(squared=true)"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "pos", "message"),
    [
        ("bce +", 5, "expected a loss name"),
        ("0.5 mse", 4, "expected '\\*'"),
        ("dice(smooth=)", 12, "expected a value"),
        ("bce bce", 4, "unexpected 'b'"),
        ("dice(smooth=1", 13, "expected '\\)'"),
        ("dice(smooth=1, smooth=2)", 15, "given twice"),
        ("", 0, "empty"),
        ("bce * ", 6, "expected a number"),
        ("dice(=1)", 5, "expected a parameter name"),
    ],
)
def test_malformed_spec_names_the_position(spec, pos, message):
    with pytest.raises(SpecError, match=message) as info:
        create_loss(spec)
    assert info.value.pos == pos
    assert f"position {pos}" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("spec", "pos"), [("-1*bce", 0), ("0*bce", 0), ("bce + 0*dice", 6), ("bce*0", 0)])
def test_weights_must_be_positive(spec, pos):
    with pytest.raises(ValueError, match="positive") as info:
        create_loss(spec)
    assert info.value.pos == pos


def test_unknown_loss_suggests_the_closest_names():
    with pytest.raises(ValueError, match="'dice'") as info:
        create_loss("bce + dcie")
    assert info.value.pos == 6
    with pytest.raises(ValueError, match="unknown loss 'nothing_like_it'"):
        create_loss("nothing_like_it")


def test_unknown_parameter_suggests_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'smooth'") as info:
        create_loss("dice(smoth=1)")
    assert "squared" in str(info.value)
    with pytest.raises(ValueError, match="no parameter 'delta'"):
        create_loss("bce(delta=1)")


def test_bad_reduction_and_contract():
    with pytest.raises(ValueError, match="reduction"):
        create_loss("bce", reduction="avg")
    with pytest.raises(ValueError, match="contract"):
        create_loss("bce", contract="masks")


def test_registry_lookup_errors():
    with pytest.raises(ValueError, match="'jaccard'"):
        get_loss_info("jacard")
    assert list_losses("*dice*") == sorted(n for n in list_losses() if "dice" in n)
    assert set(list_losses(kind="region")) >= {"dice", "jaccard", "tversky", "focal_tversky", "log_cosh_dice"}


# --- equivalence warnings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "simpler"),
    [
        ("huber(delta=2)", "0.5*mse"),
        ("huber(delta=1)", "0.5*mse"),
        ("huber(delta=3)", "0.5*mse"),
        ("label_smoothing_bce(smoothing=0)", "bce"),
        ("weighted_bce(pos_weight=1)", "bce"),
        ("border_bce(w0=0)", "bce"),
        ("tversky(alpha=0.5, beta=0.5, smooth=0.3)", "dice(smooth=0.6)"),
        ("focal_tversky(alpha=0.2, beta=0.8, gamma=1)", "tversky(alpha=0.2, beta=0.8, smooth=1)"),
    ],
)
def test_equivalent_spec_warns_and_really_is_equivalent(kit, spec, simpler):
    with pytest.warns(LossEquivalenceWarning, match=re.escape(f"same loss as '{simpler}'")):
        loss = create_loss(spec, reduction="none")
    logits, target, valid = kit.inputs(seed=4, soft=True, valid=True)
    torch.testing.assert_close(
        loss(logits, target, valid), kit.create(simpler, reduction="none")(logits, target, valid)
    )


@pytest.mark.parametrize("spec", ["huber(delta=0.5)", "tversky(alpha=0.3, beta=0.7)", "focal_tversky", "bce", "dice"])
def test_no_warning_when_not_equivalent(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossEquivalenceWarning)
        create_loss(spec)


def test_huber_on_raw_values_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossEquivalenceWarning)
        create_loss("huber(delta=2)", contract="regression")


def test_same_loss_twice_warns_and_sums():
    with pytest.warns(LossEquivalenceWarning, match="twice"):
        create_loss("bce + 2*bce")


def _default_claims() -> list[str]:
    out = []
    for name in list_losses(contract="mask"):
        info = get_loss_info(name)
        if info.simplify is not None and info.simplify(dict(info.params)) is not None:
            out.append(name)
    return out


@pytest.mark.parametrize("name", _default_claims())
def test_every_default_equivalence_claim_holds(kit, name):
    # Grows with the registry: any loss whose defaults claim a simpler equivalent must equal it.
    info = get_loss_info(name)
    simpler, _ = info.simplify(dict(info.params))
    logits, target, valid = kit.inputs(seed=6, soft=True, valid=True)
    ours = kit.create(name, reduction="none")(logits, target, valid)
    torch.testing.assert_close(ours, kit.create(simpler, reduction="none")(logits, target, valid))


# --- hybrids ----------------------------------------------------------------------------------------


def test_hybrid_is_the_weighted_sum_and_logs_each_term(kit):
    logits, target, valid = kit.inputs(seed=8, soft=True, valid=True)
    hybrid = kit.create("0.5*mse + bce + 2*dice(squared=true)", reduction="none")
    assert isinstance(hybrid, HybridLoss)
    parts = [kit.create(s, reduction="none")(logits, target, valid) for s in ("mse", "bce", "dice(squared=true)")]
    expected = 0.5 * parts[0] + parts[1] + 2 * parts[2]
    torch.testing.assert_close(hybrid(logits, target, valid), expected, **kit.tight)
    terms = loss_terms(hybrid, logits, target, valid)
    assert list(terms) == ["0.5*mse", "bce", "2*dice(squared=true)"]
    torch.testing.assert_close(sum(terms.values()), expected, **kit.tight)


def test_single_loss_terms_have_one_entry(kit):
    logits, target, _ = kit.inputs()
    loss = kit.create("dice")
    assert list(loss_terms(loss, logits, target)) == ["dice"]


def test_hybrid_computes_the_sigmoid_once(kit, monkeypatch):
    calls = []
    real = torch.sigmoid

    def counting(x, *args, **kwargs):
        calls.append(1)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(torch, "sigmoid", counting)
    logits, target, _ = kit.inputs()
    kit.create("mse + dice + jaccard + focal + tversky(alpha=0.2) + pixel_dice + l1")(logits, target)
    assert len(calls) == 1


def test_hybrid_on_empty_batch_gives_zero_terms(kit):
    logits = torch.zeros(0, 4, 4, requires_grad=True)
    hybrid = kit.create("bce + dice")
    terms = loss_terms(hybrid, logits, torch.zeros(0, 4, 4))
    assert set(terms) == {"bce", "dice"}
    assert all(v.item() == 0 for v in terms.values())


def test_registry_parameters_are_the_spec_parameters_only():
    from losslab.losses import get_loss_info, list_losses

    assert get_loss_info("bce").params == {}
    assert get_loss_info("dice").params == {"smooth": 1.0, "squared": False}
    for name in list_losses():
        assert not {"reduction", "contract", "self"} & set(get_loss_info(name).params), name


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ("1e400*bce", 0),
        ("bce*1e400", 0),
        ("0.5*mse + 1e999*dice", 10),
        ("huber(delta=1e999)", 12),
        ("huber(delta=nan)", 12),
    ],
)
def test_non_finite_weights_and_values_are_refused_at_their_position(spec, where):
    with pytest.raises(SpecError, match="not a finite number") as err:
        parse_spec(spec)
    assert err.value.pos == where


@pytest.mark.parametrize(("text", "value"), [("1e-4", 1e-4), ("1E+2", 100.0), ("-2.5e-3", -2.5e-3), (".5", 0.5)])
def test_parameter_values_in_exponent_notation_parse_and_print_back(text, value):
    terms = parse_spec(f"dice(smooth={text})")
    assert terms[0].params["smooth"] == pytest.approx(value)
    assert parse_spec(format_spec(terms))[0].params == terms[0].params  # 1e-05 prints and reads back
