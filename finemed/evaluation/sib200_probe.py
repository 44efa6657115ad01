"""Stage ``eval.sib200_probe``: SIB-200 topic classification by a linear probe on a causal LM's hidden states.

For each language, every SIB-200 sentence is encoded by the frozen model; its feature is the mean of the last
hidden states over its tokens (padding masked out). A scikit-learn ``LogisticRegression`` (on standardised
features) is fitted on the train split and scored on the test split (7 topics, 701 / 204 sentences per language).
The probe measures what the representation holds about the topic, so models too small to generate an answer
(from-scratch LMs of a few million parameters) still get a downstream score. Tokenizer-choice paper: the
downstream task in miniature. The majority-class accuracy of the test split is reported as the floor.

Outputs: ``probe.json`` (accuracy per language, the floor, sizes).
"""

from __future__ import annotations

from collections import Counter as Tally
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from finemed.core.artifacts import atomic_write_json
from finemed.core.config import StageConfig
from finemed.core.logs import Counter, get_logger
from finemed.core.plan_estimates import inference
from finemed.core.runtime import Device, DType, resolve
from finemed.core.stages import StageResult, planner, stage
from finemed.data.loaders import load_sib200
from finemed.models.loading import check_model, load_causal_lm

log = get_logger(__name__)
DEFAULT_LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "ita_Latn", "spa_Latn"]


class ProbeConfig(StageConfig):
    """Stage ``eval.sib200_probe``: one model, SIB-200 train → test per language."""

    model: str
    langs: list[str] = Field(default_factory=lambda: list(DEFAULT_LANGS), min_length=1)
    train_split: str = "train"
    test_split: str = "test"
    max_sentences: int | None = Field(default=None, ge=10)  # per language and split (rehearsals); None: all
    max_length: int = Field(default=128, ge=2)
    batch_size: int = Field(default=32, ge=1)
    C: float = Field(default=1.0, gt=0)  # inverse L2 strength of the logistic regression
    max_iter: int = Field(default=2000, ge=10)
    device: Device = "auto"
    dtype: DType = "float32"
    seed: int = 0
    allow_pickle: bool = False


class ProbeResult(StageResult):
    key_metric: ClassVar[str] = "mean_accuracy"
    model: str
    mean_accuracy: float
    accuracy: dict[str, float]
    majority: dict[str, float]  # accuracy of always answering the most frequent train topic
    n_train: dict[str, int]
    n_test: dict[str, int]
    hidden_size: int


def embed(model, tok, texts: list[str], *, max_length: int, batch_size: int, rt, desc: str = ""):
    """Mean-pooled last hidden states (float32 numpy, one row per text, in the order of ``texts``). Texts are
    batched by length (less padding); right padding is masked, so a row does not depend on its batch."""
    import numpy as np
    import torch

    rows = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = tok(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    with Counter(desc, len(texts), enabled=bool(desc)) as bar:
        for start in range(0, len(texts), batch_size):
            enc = [encoded[i] for i in order[start:start + batch_size]]
            width = max(1, max(len(ids) for ids in enc))
            ids = torch.full((len(enc), width), pad, dtype=torch.long)
            mask = torch.zeros((len(enc), width), dtype=torch.long)
            for i, seq in enumerate(enc):
                ids[i, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[i, :len(seq)] = 1
            with torch.no_grad(), rt.autocast():
                out = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                            output_hidden_states=True)
            h = out.hidden_states[-1].float()
            m = mask.to(h.device).unsqueeze(-1).float()
            rows.append(((h * m).sum(1) / m.sum(1).clamp(min=1.0)).cpu().numpy())
            bar.advance(len(enc))
    feats = np.concatenate(rows, axis=0)
    out = np.empty_like(feats)
    out[order] = feats
    return out


def probe_accuracy(x_train, y_train, x_test, y_test, *, C: float = 1.0, max_iter: int = 2000, seed: int = 0) -> float:
    """Test accuracy of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    clf.fit(x_train, y_train)
    return float(clf.score(x_test, y_test))


@stage("eval.sib200_probe")
def run(config: ProbeConfig, run_dir: Path) -> ProbeResult:
    """Stage entry: probe accuracy per language; writes ``probe.json``."""
    check_model(config.model, config.allow_pickle)
    cap = config.max_sentences
    data = {lang: (load_sib200(lang, splits=(config.train_split,))[:cap],
                   load_sib200(lang, splits=(config.test_split,))[:cap]) for lang in config.langs}
    rt = resolve(config.device, config.dtype)
    model, tok = load_causal_lm(config.model, runtime=rt, allow_pickle=config.allow_pickle)
    acc, floor, n_train, n_test = {}, {}, {}, {}
    for lang, (train, test) in data.items():
        feats = [embed(model, tok, [s.text for s in part], max_length=config.max_length,
                       batch_size=config.batch_size, rt=rt, desc=f"probe {lang} {name}")
                 for name, part in (("train", train), ("test", test))]
        y_train, y_test = [s.category for s in train], [s.category for s in test]
        acc[lang] = round(probe_accuracy(feats[0], y_train, feats[1], y_test, C=config.C, max_iter=config.max_iter,
                                         seed=config.seed), 6)
        top = Tally(y_train).most_common(1)[0][0]
        floor[lang] = round(sum(y == top for y in y_test) / len(y_test), 6)
        n_train[lang], n_test[lang] = len(train), len(test)
        log.info("SIB-200 probe %s: accuracy %.3f (majority %.3f)", lang, acc[lang], floor[lang])
    result = ProbeResult(model=config.model, mean_accuracy=round(sum(acc.values()) / len(acc), 6), accuracy=acc,
                         majority=floor, n_train=n_train, n_test=n_test, hidden_size=int(model.config.hidden_size))
    atomic_write_json(Path(run_dir) / "probe.json", result)
    return result


@planner("eval.sib200_probe")
def plan(config: ProbeConfig, ctx) -> dict:
    """``finemed plan``: one forward pass per SIB-200 sentence (train + test splits) per language; the logistic
    regressions are seconds of CPU."""
    sentences = len(config.langs) * (701 + 204)
    tokens = sentences * min(config.max_length, 40)
    return {**inference(config.model, ctx, tokens=tokens), "sentences": sentences, "disk_gib": 0.0,
            "assumes": "701 train + 204 test sentences per language, ~40 tokens each (capped at max_length)"}
