"""Reader-study figures, pure: each reading's answer against the reference, unassisted vs assisted.

Rows are readings paired by (rater, image): ``truth`` the image's reference, ``unassisted`` and
``assisted`` the rater's two answers, ``image`` the image's index (the bootstrap's unit: every
resample draws golden images, and a drawn image brings all of its rows, so the two sides of the
difference always see the same images). Quality answers are class codes (macro F1 over the classes
that occur in the reference or the answers, as scikit-learn's ``f1_score(average="macro")``);
severity answers are grades (RMSE against the reference value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    bootstrap_weights,
    percentile_interval,
)


def macro_f1(truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted macro F1 per row of ``weights`` (k, rows): NaN where no class occurs."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    classes = np.union1d(truth, pred)
    f1 = np.full((w.shape[0], len(classes)), np.nan)
    for j, c in enumerate(classes):
        t, p = truth == c, pred == c
        tp, fp, fn = w @ (t & p), w @ (~t & p), w @ (t & ~p)
        den = 2 * tp + fp + fn
        f1[:, j] = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)
    with np.errstate(all="ignore"):
        out = np.nanmean(f1, axis=1) if len(classes) else np.full(w.shape[0], np.nan)
    return out


def rmse(truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted root mean squared error per row of ``weights``: NaN where the weights sum to 0."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    sq = (np.asarray(pred, float) - np.asarray(truth, float)) ** 2
    total = w.sum(axis=1)
    with np.errstate(all="ignore"):
        return np.where(total > 0, np.sqrt((w @ sq) / np.where(total > 0, total, 1)), np.nan)


@dataclass(frozen=True)
class PairedAccuracy:
    """Accuracy unassisted and assisted on the same readings, and assisted minus unassisted."""

    metric: str  # "macro_f1" (higher is better) or "rmse" (lower is better)
    readings: int  # paired readings (rater, image)
    images: int
    unassisted: float | None
    assisted: float | None
    difference: float | None
    interval: Interval

    def as_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "readings": self.readings,
            "images": self.images,
            "unassisted": self.unassisted,
            "assisted": self.assisted,
            "difference": self.difference,
            "difference_interval": self.interval.as_dict(),
        }


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def paired_accuracy(
    truth: np.ndarray,
    unassisted: np.ndarray,
    assisted: np.ndarray,
    image: np.ndarray,
    n_images: int,
    *,
    severity: bool,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedAccuracy:
    """Both accuracies, their difference (assisted - unassisted) and its percentile bootstrap
    interval over golden images (labeler.metrics.bootstrap)."""
    score = rmse if severity else macro_f1
    image = np.asarray(image, dtype=np.int64)
    ones = np.ones((1, len(image)))
    a, b = score(truth, unassisted, ones)[0], score(truth, assisted, ones)[0]
    reps = []
    for counts in bootstrap_weights(n_images, resamples, seed):
        w = counts[:, image] if len(image) else np.zeros((counts.shape[0], 0))
        reps.append(score(truth, assisted, w) - score(truth, unassisted, w))
    values = np.concatenate(reps) if reps else np.array([])
    return PairedAccuracy(
        metric="rmse" if severity else "macro_f1",
        readings=len(image),
        images=len(np.unique(image)),
        unassisted=_num(a),
        assisted=_num(b),
        difference=_num(b - a),
        interval=percentile_interval(values, seed=seed),
    )


@dataclass(frozen=True)
class Switches:
    """How answers changed between a rater's unassisted and assisted reading of an image, by whether
    the model's answer was right (equal to the reference)."""

    model_right: int  # paired readings where the model was right
    model_wrong: int
    to_model_when_right: int  # unassisted differed from the model, assisted took its answer
    away_when_right: int  # unassisted agreed with the model, assisted left it
    to_model_when_wrong: int
    away_when_wrong: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def switches(
    truth_answer: np.ndarray, model: np.ndarray, unassisted: np.ndarray, assisted: np.ndarray
) -> Switches:
    """Counts over paired readings with a model answer (``truth_answer``: the reference as an answer,
    i.e. the fused class, or the consensus grade)."""
    right = model == truth_answer
    to_model = (unassisted != model) & (assisted == model)
    away = (unassisted == model) & (assisted != model)
    return Switches(
        model_right=int(right.sum()),
        model_wrong=int((~right).sum()),
        to_model_when_right=int((to_model & right).sum()),
        away_when_right=int((away & right).sum()),
        to_model_when_wrong=int((to_model & ~right).sum()),
        away_when_wrong=int((away & ~right).sum()),
    )
