"""KD data: answer-only labels on QA-format sequences, and nothing held out is ever trained on."""

from finemed.distill.data import build_data, qa_sequences
from finemed.models.tiny import tiny_tokenizer


def test_qa_sequences_label_only_the_answer(env):
    from finemed.data.loaders import load_squad

    root, _ = env
    tok = tiny_tokenizer()
    exs = load_squad(root / "qa.json")
    ids, att, labels = qa_sequences(exs[:2], exs, tok, 3000, [0, 1])
    assert ids.shape == (4, 3000)
    for row in range(4):
        ans = labels[row][labels[row] != -100]
        assert tok.decode(ans[:-1]).strip() == exs[row // 2].answers[0]
        assert ans[-1].item() == tok.eos_token_id
        assert att[row].sum() > len(ans)  # the prompt is there, unlabeled
    assert att[0].sum() < att[1].sum() < 3000  # the 1-shot prompt is longer
    # too long for seq_len: the prompt is cut from the left, the question and answer stay
    ids, att, labels = qa_sequences(exs[:1], exs, tok, 64, [1])
    assert att.sum() == 64 and tok.decode(ids[0][labels[0] == -100]).endswith("\n\nAnswer:")


def test_heldout_is_not_trained_on(env, kd_cfg):
    root, _ = env
    tok = tiny_tokenizer()
    cfg = kd_cfg(max_train_sequences=None)
    (ids, _, _), held, held_qa, _, prompts = build_data(cfg, tok, root / "work")
    assert held and held_qa and prompts
    assert not any(h in p for h in held for p in prompts)
    assert not any(e.context in p for e in held_qa for p in prompts)
    train_text = tok.decode(ids.flatten().tolist())
    assert not any(e.context[:80] in train_text for e in held_qa)
    assert ids.size(0) == cfg.steps * cfg.batch_size  # default cap: one epoch of the configured steps
