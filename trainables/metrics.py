"""Classification metrics from a confusion matrix (rows: true class, columns: predicted).

A confusion matrix is a sum over batches and ranks, so evaluation accumulates it and
all-reduces it once, and every metric below is derived from it exactly.
"""

from __future__ import annotations

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (num_classes, num_classes) as int64, on the inputs' device."""
    index = target.long() * num_classes + pred.long()
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def classification_metrics(confusion: torch.Tensor, names: list[str]) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1 and per-class accuracy (recall).

    Balanced accuracy and macro-F1 average over the classes present in the targets, so
    a class absent from a split neither counts as 0 nor divides by zero.
    """
    cm = confusion.double().cpu()
    total = cm.sum()
    true_per_class = cm.sum(dim=1)
    pred_per_class = cm.sum(dim=0)
    hits = cm.diagonal()
    present = true_per_class > 0
    recall = torch.where(present, hits / true_per_class.clamp(min=1), torch.zeros_like(hits))
    precision = torch.where(pred_per_class > 0, hits / pred_per_class.clamp(min=1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), 0.0)
    n_present = max(int(present.sum()), 1)
    out = {
        "accuracy": float(hits.sum() / total) if total > 0 else 0.0,
        "balanced_accuracy": float(recall[present].sum() / n_present),
        "macro_f1": float(f1[present].sum() / n_present),
    }
    for i, name in enumerate(names):
        if present[i]:
            out[f"accuracy/{name}"] = float(recall[i])
    return out
