"""Fitzpatrick skin type (docs/domain.md section 10): fusion by median and agreement figures.

Answers are an int matrix (n_images, n_raters): 1..6 for Fitzpatrick I-VI, 0 for "cannot assess",
-1 for no label. "Cannot assess" is counted but is no grade: it never enters a median, a kappa, an
alpha, an agreement rate or a deviation. Fusion is the median of the graded answers with the votes
per type; when the two middle values of an even count differ, the image is a tie (both values are
reported and it has no fused type); ties are never broken silently.

Agreement reuses the shared code: quadratic-weighted Cohen's kappa per pair (agreement.py),
Krippendorff's alpha, ordinal (reliability.py), and the bootstrap sums of intervals.py.
Not built here: the protocol module, the form and the wiring into reports (issue 13, section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeler.metrics._arrays import check_labels, class_votes, mean_std, row_mask, safe_divide
from labeler.metrics.agreement import PairwiseKappa, co_occurrence, pairwise_kappa
from labeler.metrics.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    bootstrap_weights,
)
from labeler.metrics.intervals import (
    CoincidenceSums,
    RowSums,
    SeverityPairTable,
    alpha_from_coincidences,
    as_columns,
    intervals,
)
from labeler.metrics.reliability import KrippendorffAlpha, krippendorff_alpha

SKIN_TYPES: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
CANNOT_ASSESS = 0
MISSING = -1
N_TYPES = len(SKIN_TYPES)


def check_skin_types(labels: np.ndarray) -> np.ndarray:
    """Return the answers as 2-D int64 after checking each is 1..6, 0 (cannot assess) or -1."""
    arr = np.asarray(labels)
    if arr.size and np.issubdtype(arr.dtype, np.integer) and (arr.min() < -1 or arr.max() > 6):
        raise ValueError(
            "skin types must be 1-6 (Fitzpatrick I-VI), 0 (cannot assess) or -1 (no label)"
        )
    return check_labels(arr, N_TYPES + 1)


def graded(labels: np.ndarray) -> np.ndarray:
    """The graded answers 1..6, with "cannot assess" and no label both -1 (int64)."""
    arr = check_skin_types(labels)
    return np.where(arr >= 1, arr, MISSING)


def _middle_types(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper middle type (1..6, 0 where nothing is graded) and the count, from votes
    per type on the last axis (..., 6)."""
    count = votes.sum(axis=-1)
    cum = np.cumsum(votes, axis=-1)
    # The p-th smallest answer (0-based) is the first type whose cumulative count exceeds p.
    low = 1 + (cum <= ((count - 1) // 2)[..., None]).sum(axis=-1)
    high = 1 + (cum <= (count // 2)[..., None]).sum(axis=-1)
    none = count == 0
    return np.where(none, 0, low), np.where(none, 0, high), count


@dataclass(frozen=True)
class SkinTypeFusion:
    """Per image: the median skin type with the votes behind it, ties and "cannot assess" reported."""

    votes: np.ndarray  # (n_images, 6) int: answers per type, column t - 1 for type t
    cannot_assess: np.ndarray  # (n_images,) int: "cannot assess" answers
    n_graded: np.ndarray  # (n_images,) int: answers 1..6
    median: (
        np.ndarray
    )  # (n_images,) float: median of the graded answers (x.5 on a tie), NaN if none
    fused: np.ndarray  # (n_images,) int: fused type 1..6; -1 on a tie or with no graded answer
    tie: np.ndarray  # (n_images,) bool: even count whose two middle answers differ
    tie_low: np.ndarray  # (n_images,) int: lower middle type on a tie, else 0
    tie_high: np.ndarray  # (n_images,) int: upper middle type on a tie, else 0
    only_cannot_assess: np.ndarray  # (n_images,) bool: answered, but only "cannot assess"
    unlabeled: np.ndarray  # (n_images,) bool: no answer at all


def fuse_skin_types(labels: np.ndarray) -> SkinTypeFusion:
    """Median of the graded answers per image with vote counts; two different middle values are a
    tie (no fused type); images answered only "cannot assess" are reported as such."""
    arr = check_skin_types(labels)
    all_votes = class_votes(arr, N_TYPES + 1)  # column 0: cannot assess; 1..6: the types
    votes = all_votes[:, 1:]
    cannot = all_votes[:, 0]
    low, high, count = _middle_types(votes)
    has = count > 0
    tie = has & (low != high)
    median = np.where(has, (low + high) / 2.0, np.nan)
    return SkinTypeFusion(
        votes=votes,
        cannot_assess=cannot,
        n_graded=count,
        median=median,
        fused=np.where(has & ~tie, low, -1),
        tie=tie,
        tie_low=np.where(tie, low, 0),
        tie_high=np.where(tie, high, 0),
        only_cannot_assess=~has & (cannot > 0),
        unlabeled=~has & (cannot == 0),
    )


@dataclass(frozen=True)
class PairwiseRate:
    """Per rater pair, the share of co-graded images where the two answers agree (exactly, or
    within one type), with mean ± population std over pairs and the pooled share."""

    rate: np.ndarray  # (R, R) float: NaN if a == b, no co-graded image or left out
    mean: float
    std: float  # population std (ddof=0) over the kept pairs
    n_pairs: int
    pooled: float  # agreeing co-graded pairs / co-graded pairs, over the kept pairs
    n_co_labeled: np.ndarray  # (R, R) int: images both raters graded (1..6)
    n_excluded_pairs: int  # distinct pairs left out for fewer than min_co_labeled images


def _rates(
    m: np.ndarray, within: int, min_co_labeled: int
) -> tuple[PairwiseRate, np.ndarray, np.ndarray]:
    """PairwiseRate from co-occurrence counts (R, R, 6, 6): agreement when |c - d| <= within."""
    idx = np.arange(N_TYPES)
    agree = (np.abs(idx[:, None] - idx[None, :]) <= within).astype(float)
    hits = np.einsum("abcd,cd->ab", m, agree)
    n_co = m.sum(axis=(2, 3))
    if min_co_labeled < 1:
        raise ValueError("min_co_labeled must be at least 1")
    upper = np.triu(np.ones(n_co.shape, dtype=bool), k=1)
    kept = upper & (n_co >= min_co_labeled)
    rate = safe_divide(hits, n_co)
    rate[~(kept | kept.T)] = np.nan
    mean, std, n_pairs = mean_std(rate[kept])
    pooled = safe_divide(hits[kept].sum(), n_co[kept].sum())
    out = PairwiseRate(
        rate=rate,
        mean=float(mean),
        std=float(std),
        n_pairs=int(n_pairs),
        pooled=float(pooled),
        n_co_labeled=n_co.astype(np.int64),
        n_excluded_pairs=int(upper.sum() - kept.sum()),
    )
    return out, hits, n_co


def agreement_rates(
    labels: np.ndarray, *, rows: np.ndarray | None = None, min_co_labeled: int = 1
) -> tuple[PairwiseRate, PairwiseRate]:
    """Exact and within-one agreement per rater pair over the images both graded (1..6)."""
    g = graded(labels)
    g = np.where(row_mask(rows, g.shape[0])[:, None], g, MISSING)
    m = co_occurrence(np.where(g >= 1, g - 1, MISSING), N_TYPES)
    exact, _, _ = _rates(m, 0, min_co_labeled)
    within, _, _ = _rates(m, 1, min_co_labeled)
    return exact, within


@dataclass(frozen=True)
class RaterMAD:
    """Per-rater mean absolute deviation from the golden consensus (the median of graded answers)."""

    mad: np.ndarray  # (R,) float: consensus includes the rater; NaN for a rater with no image
    mad_loo: np.ndarray  # (R,) float: consensus (median) of the other raters' graded answers
    n_images: np.ndarray  # (R,) int: golden images the rater graded
    n_images_loo: np.ndarray  # (R,) int: of those, images some other rater also graded
    n_tied_images: int  # golden images whose consensus is a tie (deviation from the midpoint)


def _mad_parts(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Per image and rater |answer - median| (rater included), its mask, the same against the
    median of the other raters, and the number of tied images; g holds 1..6 or -1."""
    ok = g >= 1
    votes = class_votes(np.where(ok, g - 1, MISSING), N_TYPES)  # (n, 6)
    low, high, count = _middle_types(votes)
    median = (low + high) / 2.0
    err = np.where(ok, np.abs(g - median[:, None]), 0.0)
    own = (np.where(ok, g - 1, MISSING)[:, :, None] == np.arange(N_TYPES)).astype(np.int64)
    lo_o, hi_o, cnt_o = _middle_types(votes[:, None, :] - own)  # (n, R)
    ok_loo = ok & (cnt_o > 0)
    err_loo = np.where(ok_loo, np.abs(g - (lo_o + hi_o) / 2.0), 0.0)
    tied = int(((count > 0) & (low != high)).sum())
    return err, ok.astype(np.float64), err_loo, ok_loo.astype(np.float64), tied


def rater_mad(labels: np.ndarray, golden: np.ndarray | None = None) -> RaterMAD:
    """MAD_i = mean over golden images k rater i graded of |y_ik - median_k|, where median_k is the
    median of all graded answers to k (the rater's included; the midpoint of a tie)."""
    g = graded(labels)
    g = g[row_mask(golden, g.shape[0])]
    err, ok, err_loo, ok_loo, tied = _mad_parts(g)
    return RaterMAD(
        mad=safe_divide(err.sum(axis=0), ok.sum(axis=0)),
        mad_loo=safe_divide(err_loo.sum(axis=0), ok_loo.sum(axis=0)),
        n_images=np.rint(ok.sum(axis=0)).astype(np.int64),
        n_images_loo=np.rint(ok_loo.sum(axis=0)).astype(np.int64),
        n_tied_images=tied,
    )


@dataclass(frozen=True)
class SkinTypeAgreement:
    """The skin-type agreement figures with percentile bootstrap intervals (None if not drawn)."""

    kappa: PairwiseKappa  # quadratic-weighted, by type distance, over co-graded images
    alpha: KrippendorffAlpha  # ordinal, over the graded answers
    exact: PairwiseRate
    within_one: PairwiseRate
    mad: RaterMAD  # on the golden images
    n_cannot_assess: int  # "cannot assess" answers on the images in scope, left out of all figures
    kappa_interval: Interval | None  # for kappa.mean
    alpha_interval: Interval | None
    exact_interval: Interval | None  # for exact.mean
    within_one_interval: Interval | None  # for within_one.mean
    mad_intervals: list[Interval | None]  # per rater, for mad.mad
    min_co_labeled: int
    resamples: int
    seed: int


def skin_type_agreement(
    labels: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    golden: np.ndarray | None = None,
    min_co_labeled: int = 1,
    groups: np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    chunk: int = 250,
) -> SkinTypeAgreement:
    """Kappa, alpha, exact and within-one agreement over the images in `rows` (default all), the
    per-rater MAD over the `golden` ones (default all). `groups` (a case id per image) makes the
    bootstrap draw whole cases; resamples=0 skips the intervals."""
    arr = check_skin_types(labels)
    n, r = arr.shape
    scope = row_mask(rows, n)
    gold = row_mask(golden, n)
    g = graded(arr)
    g_scope = np.where(scope[:, None], g, MISSING)
    codes = np.where(g_scope >= 1, g_scope - 1, MISSING)

    kappa = pairwise_kappa(codes, N_TYPES, weights="quadratic", min_co_labeled=min_co_labeled)
    alpha = krippendorff_alpha(g_scope, "ordinal", value_domain=SKIN_TYPES)
    exact, within = agreement_rates(g_scope, min_co_labeled=min_co_labeled)
    mad = rater_mad(g, gold)

    iv: dict[str, Interval | None] = dict.fromkeys(("kappa", "alpha", "exact", "within"))
    mad_iv: list[Interval | None] = [None] * r
    if resamples and n:
        reps = skin_type_replicates(
            arr,
            rows=scope,
            golden=gold,
            min_co_labeled=min_co_labeled,
            resamples=resamples,
            seed=seed,
            groups=groups,
            chunk=chunk,
        )
        iv = {key: intervals(reps[key], level, seed) for key in iv}
        mad_iv = intervals(reps["mad"], level, seed) if r else []
    return SkinTypeAgreement(
        kappa=kappa,
        alpha=alpha,
        exact=exact,
        within_one=within,
        mad=mad,
        n_cannot_assess=int(((arr == CANNOT_ASSESS) & scope[:, None]).sum()),
        kappa_interval=iv["kappa"],
        alpha_interval=iv["alpha"],
        exact_interval=iv["exact"],
        within_one_interval=iv["within"],
        mad_intervals=mad_iv,
        min_co_labeled=min_co_labeled,
        resamples=resamples,
        seed=seed,
    )


def skin_type_replicates(
    labels: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    golden: np.ndarray | None = None,
    min_co_labeled: int = 1,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    groups: np.ndarray | None = None,
    chunk: int = 250,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates (one row per resample) of the headline figures: kappa (mean over kept
    pairs), alpha (ordinal), exact and within (mean rates over kept pairs), all over the images in
    `rows`, and mad (B, R) on the `golden` images. A pair is left out of a resample with fewer than
    `min_co_labeled` co-graded draws. Every image is resampled (whole cases with `groups`)."""
    g = graded(labels)
    n, r = g.shape
    scope = row_mask(rows, n)
    gold = row_mask(golden, n)
    codes = np.where(scope[:, None] & (g >= 1), g - 1, MISSING)
    min_co = min_co_labeled
    if min_co < 1:
        raise ValueError("min_co_labeled must be at least 1")
    pairs = SeverityPairTable(codes)
    # Per pair: co-graded count, exact and within-one indicators, from its squared differences.
    rate_feats = [
        np.stack([f[0], f[5] == 0, f[5] <= 1]).astype(pairs.dtype) for f in pairs.features
    ]
    alpha_sums = CoincidenceSums(codes, np.arange(N_TYPES), np.ones(n, dtype=bool))
    err, ok, _, _, _ = _mad_parts(np.where(gold[:, None], g, MISSING))
    mad_sums = RowSums(np.concatenate([err, ok], axis=1))
    out: dict[str, list[np.ndarray]] = {}
    for w in bootstrap_weights(n, resamples, seed, groups, chunk):
        wt = as_columns(w)
        k = wt.shape[1]
        s = np.zeros((3, len(rate_feats), k))
        for p, (idx, feat) in enumerate(zip(pairs.index, rate_feats, strict=True)):
            if idx.size:
                s[:, p, :] = feat @ wt[idx].astype(pairs.dtype, copy=False)
        n_co = s[0].T  # (k, P)
        for key, hits in (("exact", s[1].T), ("within", s[2].T)):
            rate = safe_divide(hits, n_co)
            rate[n_co < min_co] = np.nan
            out.setdefault(key, []).append(mean_std(rate, axis=1)[0])
        out.setdefault("kappa", []).append(pairs.kappa_mean(wt, min_co))
        oc = alpha_sums(wt)
        out.setdefault("alpha", []).append(
            alpha_from_coincidences(oc, "ordinal", np.arange(N_TYPES))
        )
        m = mad_sums(wt)
        out.setdefault("mad", []).append(safe_divide(m[:, :r], m[:, r:]))
    return {key: np.concatenate(parts) for key, parts in out.items()}
