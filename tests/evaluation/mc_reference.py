"""lm-eval's ``multiple_choice`` scoring written out with plain forwards, for the tests to check lm-eval runs
against (independent of finemed and of lm-eval's batching, padding and caching)."""

from __future__ import annotations


def option_loglikelihoods(model, tok, prompt: str, choices: list[str], max_length: int) -> list[float]:
    """Each option's summed log-probability after the prompt, in fp64 from a plain forward: prompt + " " + option
    is tokenised whole and split where the prompt's own tokens end (lm-eval's ``target_delimiter`` and
    ``_encode_pair``); the last max_length + 1 tokens are kept."""
    import torch

    ctx, out = tok.encode(prompt), []
    for choice in choices:
        whole = tok.encode(prompt + " " + choice)
        seq, n_cont = whole[-(max_length + 1):], len(whole) - len(ctx)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([seq[:-1]])).logits[0].double(), -1)
        out.append(float(logp[-n_cont:].gather(-1, torch.tensor(seq[1:])[-n_cont:, None]).sum()))
    return out


def accuracy(model, tok, items: list[tuple[str, list[str], int]], max_length: int) -> float:
    """Share of ``(prompt, choices, gold index)`` items whose gold option has the highest log-likelihood."""
    hits = 0
    for prompt, choices, gold in items:
        ll = option_loglikelihoods(model, tok, prompt, choices, max_length)
        hits += int(max(range(len(ll)), key=ll.__getitem__) == gold)
    return hits / len(items)
