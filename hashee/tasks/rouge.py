"""ROUGE of generated text (Google's ``rouge-score`` package, Porter stemming)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

ROUGE_METRICS = ("rouge1", "rouge2", "rougeL")


def example_rouge(predictions: Sequence[str], references: Sequence[str],
                  metrics: Sequence[str] = ROUGE_METRICS) -> dict[str, np.ndarray]:
    """ROUGE F1 (Porter stemming) of every pair, with Google's ``rouge-score`` package: ``{metric: [N]}``, in [0, 1]."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references (>0), got {len(predictions)} and {len(references)}")
    scorer = rouge_scorer.RougeScorer(list(metrics), use_stemmer=True)
    pairs = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
    return {name: np.array([pair[name].fmeasure for pair in pairs]) for name in metrics}


def rouge_scores(predictions: Sequence[str], references: Sequence[str],
                 metrics: Sequence[str] = ROUGE_METRICS) -> dict[str, float]:
    """Mean ROUGE F1 over pairs (:func:`example_rouge`)."""
    return {name: float(values.mean()) for name, values in example_rouge(predictions, references, metrics).items()}
