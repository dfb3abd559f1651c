"""ROUGE of generated text (Google's ``rouge-score`` package, Porter stemming)."""

from __future__ import annotations

from typing import Sequence

ROUGE_METRICS = ("rouge1", "rouge2", "rougeL")


def rouge_scores(predictions: Sequence[str], references: Sequence[str],
                 metrics: Sequence[str] = ROUGE_METRICS) -> dict[str, float]:
    """Mean ROUGE F1 (Porter stemming) over pairs, with Google's ``rouge-score`` package; in [0, 1]."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references (>0), got {len(predictions)} and {len(references)}")
    scorer = rouge_scorer.RougeScorer(list(metrics), use_stemmer=True)
    totals = dict.fromkeys(metrics, 0.0)
    for prediction, reference in zip(predictions, references):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    return {name: total / len(references) for name, total in totals.items()}
