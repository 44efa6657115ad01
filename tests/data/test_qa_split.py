"""The shared dev/test split of QA sets by article (issue 22, 9): stable, whole articles, what the test tasks load."""

from __future__ import annotations

import pytest

from finemed.config import FinemedError
from finemed.data.loaders import load_squad
from finemed.data.qa_split import heldout_contexts, is_test_article, split_articles


@pytest.mark.parametrize("name", ["xquad.en", "mlqa.de"])
def test_split_is_by_whole_article_and_stable(name):
    examples = load_squad(name=name)
    train, test = split_articles(examples)
    assert len(train) + len(test) == len(examples)
    assert not {e.title for e in train} & {e.title for e in test}
    assert not {e.context for e in train} & heldout_contexts(examples)
    assert 0.1 < len({e.title for e in test}) / len({e.title for e in examples}) < 0.3
    assert [e.id for e in split_articles(list(reversed(examples)))[1]] == [e.id for e in reversed(test)]


def test_one_sided_split_is_one_line_error():
    title = next(e.title for e in load_squad(name="xquad.en") if not is_test_article(e.title))
    with pytest.raises(FinemedError, match="needs articles on both sides"):
        split_articles([e for e in load_squad(name="xquad.en") if e.title == title])


def test_lm_eval_test_tasks_load_the_test_articles_only():
    from lm_eval.tasks import get_task_dict

    from finemed.evaluation.lmeval_runner import task_manager

    sets = {"finemed_xquad_en_test_1shot": "xquad.en", "finemed_mlqa_de_test_0shot": "mlqa.de"}
    tasks = get_task_dict(list(sets), task_manager())
    for task_name, name in sets.items():
        docs = list(tasks[task_name].test_docs())
        test = split_articles(load_squad(name=name))[1]
        assert sorted(d["id"] for d in docs) == sorted(e.id for e in test) and docs
