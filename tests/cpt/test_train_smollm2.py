"""SmolLM2 CPT acceptance (slow): German medical CPT lowers held-out domain bpb by >= 10% relative, on CPU.

The configuration is the quickstart's ``cpt`` stage (about 74k training tokens; minutes on an idle 2-core CPU
with bf16 autocast). General German and English bpb are reported before and after.
"""

from __future__ import annotations

import pytest

from finemed.cpt.train import CptConfig, run

QUICKSTART_CPT = dict(
    model="smollm2", domain={"source": "builtin:medical"},
    general_eval={"general_de": {"source": "builtin:fortunes_de", "max_docs": 120},
                  "general_en": {"source": "builtin:xquad.en", "max_docs": 10}},
    heldout_fraction=0.15, eval_max_docs=16, seq_len=256, batch_size=8, lr=2e-4, warmup_steps=4, max_steps=36,
    save_steps=12, logging_steps=2)


@pytest.mark.slow
def test_smollm2_cpt_drops_domain_bpb_by_ten_percent(tmp_path):
    res = run(CptConfig(**QUICKSTART_CPT), tmp_path / "cpt")
    print(res.model_dump_json(indent=1))
    assert res.domain_bpb_drop >= 0.10
    assert 2.0 < res.bpb_before["domain"] < 3.0          # SmolLM2 is an English model: German medical is hard
    assert set(res.bpb_after) == {"domain", "general_de", "general_en"}
    assert res.bpb_after["general_de"] < res.bpb_before["general_de"]  # German in general improves too
