"""KD trainer input checks: one shared tokenizer, and the teacher on the student's device in the right dtype."""

import pytest
import torch

from finemed.core.config import FinemedError
from finemed.distill.trainer import check_teacher, check_vocab
from finemed.models.tiny import tiny_llama, tiny_tokenizer


def test_vocab_mismatch_names_first_ids():
    a, b = tiny_tokenizer(), tiny_tokenizer(vocab_size=300)
    check_vocab(a, tiny_tokenizer())  # same tokenizer passes
    with pytest.raises(FinemedError, match=r"tokenizers differ \(512 vs 300 tokens.*first: \d+ \("):
        check_vocab(a, b)


def test_teacher_on_wrong_device_or_dtype():
    student, teacher = tiny_llama(num_layers=1), tiny_llama(num_layers=2)
    check_teacher(teacher, student, torch.float32)
    with pytest.raises(FinemedError, match="teacher dtype is torch.bfloat16 but torch.float32 was expected"):
        check_teacher(tiny_llama(num_layers=2).to(torch.bfloat16), student, torch.float32)
    with pytest.raises(FinemedError, match="teacher is on meta but the student is on cpu"):
        check_teacher(tiny_llama(num_layers=2).to("meta"), student)
