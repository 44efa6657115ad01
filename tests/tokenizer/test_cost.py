"""The Megatron cost formula on known configurations, and extra cost on a language mix."""

from __future__ import annotations

import pytest

from finemed.core.config import FinemedError
from finemed.tokenizer.cost import ModelShape, cost_table, extra_cost, flops_per_token, parse_mix, preset


def test_formula_hand_computed():
    # 96·l·h²·(1 + s/6h + V/16lh) with l=2, h=4, s=12, V=64: 96·2·16·(1 + 0.5 + 0.5) = 6144
    shape = ModelShape(layers=2, hidden=4, seq_len=12)
    assert flops_per_token(shape, 64) == 6144
    assert flops_per_token(shape, 64, recompute=False) == 6144 * 72 / 96


def test_formula_gpt3_scale():
    # GPT-3 175B shape (Megatron-LM paper, Narayanan et al. 2021): l=96, h=12288, s=2048, V=51200
    f = flops_per_token(ModelShape(layers=96, hidden=12288, seq_len=2048), 51200)
    assert f == pytest.approx(96 * 96 * 12288**2 * (1 + 2048 / (6 * 12288) + 51200 / (16 * 96 * 12288)))
    assert f == pytest.approx(1.4340e12, rel=1e-4)
    # the well-known 6·N·(1 + recompute/3) rule: 175B params → 8·N ≈ 1.40e12; Megatron adds attention and logits
    assert 1.0 < f / (8 * 175e9) < 1.05


def test_extra_cost_on_mix():
    metrics = {"en": {"eng_Latn": {"fertility": 1.2}, "deu_Latn": {"fertility": 2.4}},
               "multi": {"eng_Latn": {"fertility": 1.4}, "deu_Latn": {"fertility": 1.6}}}
    shape = ModelShape(layers=2, hidden=4, seq_len=12)
    mix = parse_mix("eng_Latn=1,deu_Latn=1")
    # same vocab → FLOPs/token cancel: (0.5·1.2 + 0.5·2.4) / (0.5·1.4 + 0.5·1.6) − 1 = 1.8/1.5 − 1 = 0.2
    assert extra_cost(metrics, {"en": 64, "multi": 64}, mix, shape, "en", "multi") == pytest.approx(0.2)
    # a vocab twice as large costs more per token: F(128) = 96·2·16·(1 + 0.5 + 1.0) = 7680
    assert extra_cost(metrics, {"en": 64, "multi": 128}, mix, shape, "en", "multi") == pytest.approx(
        1.8 * 6144 / (1.5 * 7680) - 1)
    rows = cost_table(metrics, {"en": 64, "multi": 64}, mix, shape)
    assert [r.tokenizer for r in rows] == ["multi", "en"] and rows[0].extra_vs_baseline == 0


def test_cost_bad_input():
    metrics = {"en": {"eng_Latn": {"fertility": 1.2}}}
    shape = ModelShape(layers=2, hidden=4, seq_len=12)
    with pytest.raises(FinemedError, match="no metrics for deu_Latn"):
        cost_table(metrics, {"en": 64}, {"deu_Latn": 1.0}, shape)
    with pytest.raises(FinemedError, match="not a number"):
        parse_mix("eng_Latn=x")
    with pytest.raises(FinemedError, match="baseline tokenizer 'gpt2' not in the metrics"):
        cost_table(metrics, {"en": 64}, {"eng_Latn": 1.0}, shape, baseline="gpt2")


def test_cost_spec_shapes():
    from finemed.tokenizer.cost import CostSpec

    assert CostSpec(mix={"deu_Latn": 1}, model="smollm2").shape() == preset("smollm2")
    assert CostSpec(mix={"deu_Latn": 1}, model="7b", seq_len=2048).shape().seq_len == 2048
    custom = CostSpec(mix={"deu_Latn": 1}, model="custom", layers=2, hidden=4, seq_len=12).shape()
    assert flops_per_token(custom, 64) == 6144
    with pytest.raises(FinemedError, match="needs layers, hidden and seq_len"):
        CostSpec(mix={"deu_Latn": 1}, model="custom", layers=2).shape()
