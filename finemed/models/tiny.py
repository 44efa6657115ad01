"""Tiny random Llama-architecture models and a small trained byte-level BPE, for fast tests.

They are real transformers objects (``LlamaForCausalLM``, ``PreTrainedTokenizerFast``), only small, so every
code path that takes an HF model dir runs on them in seconds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from finemed.data.loaders import load_grascco, load_sib200
from finemed.models.loading import save_model

TINY_VOCAB = 512
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _training_texts() -> list[str]:
    """Bundled German + English text when available, else a fixed built-in sample."""
    try:

        texts = [d.text for d in load_grascco()[:10]]
        texts += [s.text for s in load_sib200("eng_Latn", splits=("train",))[:300]]
        texts += [s.text for s in load_sib200("deu_Latn", splits=("train",))[:300]]
        return texts
    except Exception:
        base = ["Der Patient klagt über Schmerzen in der Brust.", "The patient reports chest pain.",
                "Die Therapie wurde mit 500 mg Metformin begonnen.", "A quick brown fox jumps over the lazy dog."]
        return base * 50


@lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_texts(), trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = TINY_VOCAB):
    """A byte-level BPE (vocab ``vocab_size``) trained on bundled text, with a ChatML template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
                                  bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<pad>",
                                  unk_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_llama(vocab_size: int = TINY_VOCAB, hidden_size: int = 64, num_layers: int = 4, seed: int = 0,
               max_position_embeddings: int = 512, tie_word_embeddings: bool = True):
    """A random ``LlamaForCausalLM`` of a few hundred thousand parameters (seeded, fp32, eval mode)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=max_position_embeddings, tie_word_embeddings=tie_word_embeddings,
                         bos_token_id=0, eos_token_id=2, pad_token_id=3)
    import torch

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return model.eval()


def save_tiny(out: Path | str, *, seed: int = 0, num_layers: int = 4, hidden_size: int = 64) -> Path:
    """Write a tiny model + tokenizer HF dir to ``out`` and return it."""

    tok = tiny_tokenizer()
    model = tiny_llama(vocab_size=len(tok), seed=seed, num_layers=num_layers, hidden_size=hidden_size)
    return save_model(model, tok, out)
