"""Bootstrap replicates of the agreement figures (docs/domain.md section 8), vectorized over resamples.

Every figure here is a function of sums over images, so a resample (a vector of counts per image,
from `bootstrap.bootstrap_weights`) enters as weights: a chunk of k resamples is a (k, n) matrix
and each figure's sums for all k resamples are one matrix product. Pairwise figures are built per
rater pair from that pair's co-labeled images only (a row gather and a small product), so the
cost follows the number of (image, pair) incidences, not images x pairs. The functions take a
chunk of weights and return one value per resample; the callers collect chunks and take
percentile intervals. With weights all 1 each returns the point figure of the plain functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeler.metrics._arrays import check_labels, count_dtype, mean_std, safe_divide
from labeler.metrics.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_weights,
    percentile_interval,
)

_F = np.float64  # sums of integer weights: exact in float64 for any realistic project


def as_columns(weights: np.ndarray) -> np.ndarray:
    """A (k, n) count chunk as a C-contiguous (n, k) float32 array: rows gather fast per image.

    Counts are small integers, so float32 holds them exactly; products with 0/1 features summed
    over fewer than 2**24 images stay exact (float32 BLAS runs about twice as fast).
    """
    w = np.asarray(weights)
    return np.ascontiguousarray(w.T, dtype=count_dtype(w.shape[1]))


@dataclass(frozen=True)
class PairStats:
    """Per resample: pairwise F1 per class (mean, std over pairs), macro F1 over pairs, kappa."""

    class_mean: np.ndarray  # (k, K) mean over kept pairs with a defined F1
    class_std: np.ndarray  # (k, K) population std over the same pairs
    macro_mean: np.ndarray  # (k,) mean over kept pairs of the pair's macro F1 (reading a)
    macro_std: np.ndarray  # (k,) population std of the same (reading a)
    kappa_mean: np.ndarray | None  # (k,) mean Cohen's kappa over kept pairs (classes only)

    @property
    def pairs_bar(self) -> np.ndarray:
        """Reading (a), the default: mean - std over rater pairs of the pairwise macro F1."""
        return self.macro_mean - self.macro_std

    @property
    def class_average_mean(self) -> np.ndarray:
        """Reading (b), the ImageQX paper's: the average over classes of the per-class means."""
        return mean_std(self.class_mean, axis=1)[0]

    @property
    def class_average_std(self) -> np.ndarray:
        """Reading (b): the average over classes of the per-class stds."""
        return mean_std(self.class_std, axis=1)[0]

    @property
    def class_average_bar(self) -> np.ndarray:
        return self.class_average_mean - self.class_average_std


def _pair_stats(
    tp: np.ndarray, pos_a: np.ndarray, pos_b: np.ndarray, n_co: np.ndarray, min_co: int, kappa: bool
) -> PairStats:
    """PairStats from (k, P, K) true positives and positives, (k, P) co-labeled weight."""
    kept = n_co >= min_co  # a pair is left out of a resample with too few co-labeled draws
    f1 = safe_divide(2.0 * tp, pos_a + pos_b)
    f1[~kept] = np.nan
    class_mean, class_std, _ = mean_std(f1, axis=1)
    macro, _, _ = mean_std(f1, axis=2)  # (k, P): per pair, the mean of its defined F1s
    macro_mean, macro_std, _ = mean_std(macro, axis=1)
    kappa_mean = None
    if kappa:
        # Unweighted Cohen's kappa per pair from the same sums: observed disagreement N - sum TP,
        # chance disagreement N - sum_c A_c B_c / N.
        observed = n_co - tp.sum(axis=2)
        expected = np.nan_to_num(n_co - safe_divide((pos_a * pos_b).sum(axis=2), n_co))
        k_pair = 1.0 - safe_divide(observed, expected)
        k_pair[~kept] = np.nan
        kappa_mean = mean_std(k_pair, axis=1)[0]
    return PairStats(class_mean, class_std, macro_mean, macro_std, kappa_mean)


class PairTable:
    """Per rater pair, its co-labeled images and their 0/1 indicator features, built once.

    Class columns per pair (every co-labeled image): TP_c, A_c, B_c (c over classes), where A_c:
    rater a chose c, B_c: rater b chose c; the co-labeled count is sum_c A_c. Explanation
    columns TP_e, A_e, B_e are kept only on the co-labeled images where a or b chose one (usually
    a minority). Indicator products in float32 are exact (see count_dtype).
    """

    def __init__(
        self,
        labels: np.ndarray,
        n_classes: int,
        expl: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ):
        labels = check_labels(labels, n_classes)
        mask = labels >= 0
        if rows is not None:  # only these images count (their weights elsewhere are ignored)
            mask = mask & np.asarray(rows, dtype=bool)[:, None]
        n, r = labels.shape
        self.dtype = count_dtype(n)
        self.n_classes = n_classes
        self.n_expl = 0 if expl is None else int(np.asarray(expl).shape[2])
        chosen = None if expl is None else np.asarray(expl, dtype=bool)
        if chosen is not None and chosen.shape[:2] != (n, r):
            raise ValueError(f"expl must have shape {(n, r, 'n_expl')}, got {chosen.shape}")
        any_expl = None if chosen is None else chosen.any(axis=2)
        cls = np.arange(n_classes)
        self.pairs: list[tuple[int, int]] = []
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for a in range(r):
            for b in range(a + 1, r):
                idx = np.flatnonzero(mask[:, a] & mask[:, b])
                ya = labels[idx, a][:, None] == cls
                yb = labels[idx, b][:, None] == cls
                feat = np.concatenate([ya & yb, ya, yb], axis=1).astype(self.dtype)
                e_idx = np.zeros(0, dtype=np.int64)
                e_feat = np.zeros((0, 3 * self.n_expl), dtype=self.dtype)
                if chosen is not None:
                    e_idx = idx[any_expl[idx, a] | any_expl[idx, b]]
                    ea, eb = chosen[e_idx, a], chosen[e_idx, b]
                    e_feat = np.concatenate([ea & eb, ea, eb], axis=1).astype(self.dtype)
                self.pairs.append((a, b))
                self.parts.append((idx, feat.T.copy(), e_idx, e_feat.T.copy()))

    def sums(self, wt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, P, 3C) class sums and (k, P, 3E) explanation sums for (n, k) weight columns."""
        k = wt.shape[1]
        wt = wt.astype(self.dtype, copy=False)
        c_out = np.zeros((len(self.pairs), 3 * self.n_classes, k))
        e_out = np.zeros((len(self.pairs), 3 * self.n_expl, k))
        for p, (idx, feat_t, e_idx, e_feat_t) in enumerate(self.parts):
            if idx.size:
                c_out[p] = feat_t @ wt[idx]
            if e_idx.size:
                e_out[p] = e_feat_t @ wt[e_idx]
        return c_out.transpose(2, 0, 1), e_out.transpose(2, 0, 1)

    def stats(self, wt: np.ndarray, min_co: int = 1) -> tuple[PairStats, PairStats | None]:
        """Class statistics (with kappa) and explanation statistics for every resample."""
        s, se = self.sums(wt)
        c = self.n_classes
        tp, pos_a, pos_b = s[..., :c], s[..., c : 2 * c], s[..., 2 * c :]
        n_co = pos_a.sum(axis=2)
        classes = _pair_stats(tp, pos_a, pos_b, n_co, min_co, kappa=True)
        expl = None
        if self.n_expl:
            e = self.n_expl
            expl = _pair_stats(
                se[..., :e], se[..., e : 2 * e], se[..., 2 * e :], n_co, min_co, kappa=False
            )
        return classes, expl


class SeverityPairTable:
    """Per rater pair, co-graded images with the sums behind quadratic-weighted kappa."""

    def __init__(self, codes: np.ndarray, rows: np.ndarray | None = None):
        codes = np.asarray(codes, dtype=np.int64)
        mask = codes >= 0
        if rows is not None:
            mask = mask & np.asarray(rows, dtype=bool)[:, None]
        n, r = codes.shape
        top = max(int(codes.max(initial=0)), 1)
        self.dtype = count_dtype(n * top * top)  # exact sums of squared codes
        self.index: list[np.ndarray] = []
        self.features: list[np.ndarray] = []
        for a in range(r):
            for b in range(a + 1, r):
                idx = np.flatnonzero(mask[:, a] & mask[:, b])
                xa, xb = codes[idx, a].astype(_F), codes[idx, b].astype(_F)
                self.index.append(idx)
                feat = np.stack([np.ones_like(xa), xa, xa * xa, xb, xb * xb, (xa - xb) ** 2])
                self.features.append(feat.astype(self.dtype))

    def kappa_mean(self, wt: np.ndarray, min_co: int = 1) -> np.ndarray:
        """(k,) mean over kept pairs of the quadratic-weighted kappa (weights by code distance)."""
        k = wt.shape[1]
        wt = wt.astype(self.dtype, copy=False)
        s = np.zeros((6, len(self.index), k))
        for p, (idx, feat_t) in enumerate(zip(self.index, self.features, strict=True)):
            if idx.size:
                s[:, p, :] = feat_t @ wt[idx]
        n, s1a, s2a, s1b, s2b, d2 = s.transpose(0, 2, 1)
        # sum_cd row_c col_d (c - d)^2 / n = S2a + S2b - 2 S1a S1b / n
        expected = np.nan_to_num(s2a + s2b - 2.0 * safe_divide(s1a * s1b, n))
        kappa = 1.0 - safe_divide(d2, expected)
        kappa[n < min_co] = np.nan
        return mean_std(kappa, axis=1)[0]


class RowSums:
    """Weighted sums of per-image features, over only the images where a feature is non-zero
    (golden figures touch the golden images, not every image of the project)."""

    def __init__(self, features: np.ndarray):
        feat = np.asarray(features, dtype=_F)
        self.index = np.flatnonzero(np.abs(feat).sum(axis=1) > 0) if feat.shape[1] else []
        self.features_t = np.ascontiguousarray(feat[self.index].T)
        self.width = feat.shape[1]

    def __call__(self, wt: np.ndarray) -> np.ndarray:
        """(k, f) sums for (n, k) weight columns."""
        if not len(self.index):
            return np.zeros((wt.shape[1], self.width))
        return (self.features_t @ wt[self.index].astype(_F)).T


class CoincidenceSums:
    """Weighted sums of per-image Krippendorff coincidences, exact in float32: images are grouped
    by their number of values m, each group sums the integer numerators n_uc n_uk - [c == k] n_uc,
    and the groups are combined divided by m - 1."""

    def __init__(self, data: np.ndarray, domain: Sequence[float], rows: np.ndarray):
        arr = np.asarray(data)
        dom = np.asarray(domain, dtype=float)
        ok = arr >= 0 if np.issubdtype(arr.dtype, np.integer) else ~np.isnan(arr)
        ok = ok & np.asarray(rows, dtype=bool)[:, None]
        pos = np.minimum(
            np.searchsorted(dom, np.where(ok, arr, dom[0]).astype(float)), dom.size - 1
        )
        if np.any(ok & (dom[pos] != arr)):
            raise ValueError("data contains values outside the domain")
        v = dom.size
        counts = np.zeros((arr.shape[0], v), dtype=np.int64)
        for j in range(arr.shape[1]):  # a few raters: one bincount-like add per rater
            hit = np.flatnonzero(ok[:, j])
            counts[hit, pos[hit, j]] += 1
        m = counts.sum(axis=1)
        self.v = v
        self.dtype = count_dtype(arr.shape[0] * max(int(m.max(initial=0)), 1) ** 2)
        self.groups: list[tuple[float, np.ndarray, np.ndarray]] = []
        for size in np.unique(m[m >= 2]):
            idx = np.flatnonzero(m == size)
            c = counts[idx]
            num = c[:, :, None] * c[:, None, :]
            num[:, np.arange(v), np.arange(v)] -= c
            feat_t = np.ascontiguousarray(num.reshape(idx.size, v * v).T, dtype=self.dtype)
            self.groups.append((1.0 / (size - 1.0), idx, feat_t))

    def __call__(self, wt: np.ndarray) -> np.ndarray:
        """(k, V, V) coincidence matrices for (n, k) weight columns."""
        out = np.zeros((self.v * self.v, wt.shape[1]))
        wt = wt.astype(self.dtype, copy=False)
        for inv, idx, feat_t in self.groups:
            out += inv * (feat_t @ wt[idx])
        return out.T.reshape(wt.shape[1], self.v, self.v)


def alpha_from_coincidences(o: np.ndarray, level: str, domain: Sequence[float]) -> np.ndarray:
    """Krippendorff's alpha for each (V, V) coincidence matrix in a (k, V, V) stack."""
    dom = np.asarray(domain, dtype=float)
    n_v = o.sum(axis=1)  # (k, V)
    n = n_v.sum(axis=1)
    v = dom.size
    if level == "nominal":
        d = np.broadcast_to(1.0 - np.eye(v), o.shape)
    elif level == "interval":
        d = np.broadcast_to((dom[:, None] - dom[None, :]) ** 2, o.shape)
    elif level == "ordinal":
        lo = np.minimum.outer(np.arange(v), np.arange(v))
        hi = np.maximum.outer(np.arange(v), np.arange(v))
        cum = np.concatenate([np.zeros((n_v.shape[0], 1)), np.cumsum(n_v, axis=1)], axis=1)
        between = cum[:, hi + 1] - cum[:, lo]
        d = (between - (n_v[:, lo] + n_v[:, hi]) / 2.0) ** 2
    else:
        raise ValueError(f"unknown level {level!r}")
    observed = (o * d).sum(axis=(1, 2))
    expected = (n_v[:, :, None] * n_v[:, None, :] * d).sum(axis=(1, 2))
    alpha = 1.0 - (n - 1.0) * safe_divide(observed, expected)
    used = (n_v > 0).sum(axis=1)
    alpha[(used < 2) | (n <= 1) | ~(expected > 0)] = np.nan
    return alpha


def fleiss_parts(labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per complete image: P_i and class votes (n, C); incomplete rows are zero. Also the raters."""
    labels = check_labels(labels, n_classes)
    r = labels.shape[1]
    complete = (labels >= 0).all(axis=1) & (r >= 2)
    votes = (labels[:, :, None] == np.arange(n_classes)).sum(axis=1).astype(_F)
    votes[~complete] = 0.0
    p_item = np.zeros(labels.shape[0])
    if r >= 2:
        p_item = ((votes**2).sum(axis=1) - r) / (r * (r - 1.0))
    p_item[~complete] = 0.0
    return p_item, votes, int(r)


def fleiss_from_sums(item_sum: np.ndarray, votes: np.ndarray, n_raters: int) -> np.ndarray:
    """Fleiss' kappa per resample from the weighted sum of P_i (k,) and class votes (k, C)."""
    n_items = votes.sum(axis=1) / max(n_raters, 1)
    p_bar = safe_divide(item_sum, n_items)
    p_exp = (safe_divide(votes, (n_items * n_raters)[:, None]) ** 2).sum(axis=1)
    kappa = safe_divide(p_bar - p_exp, 1.0 - p_exp)
    kappa[~(p_exp < 1.0) | (n_items == 0)] = np.nan
    return kappa


def rmse_parts(grades: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per image and rater: squared error against the consensus (rater included) and its mask,
    and the same for the leave-one-out consensus (the acne severity study's table and its variant)."""
    g = np.asarray(grades, dtype=float)
    ok = ~np.isnan(g)
    y = np.where(ok, g, 0.0)
    count = ok.sum(axis=1, keepdims=True)
    total = y.sum(axis=1, keepdims=True)
    cons = safe_divide(total, count)
    sq = np.where(ok, (y - np.where(ok, cons, 0.0)) ** 2, 0.0)
    others = count - ok
    loo_ok = ok & (others > 0)
    loo = safe_divide(total - y, others)
    sq_loo = np.where(loo_ok, (y - np.where(loo_ok, loo, 0.0)) ** 2, 0.0)
    return sq, ok.astype(_F), sq_loo, loo_ok.astype(_F)


def rmse_from_sums(sq_sum: np.ndarray, n_sum: np.ndarray) -> np.ndarray:
    """Per resample and rater RMSE from weighted sums (k, R); NaN where a rater has no image."""
    return np.sqrt(safe_divide(sq_sum, n_sum))


def worst(values: np.ndarray) -> np.ndarray:
    """Per resample the largest defined value over raters (the bar), NaN when none is defined."""
    has = ~np.isnan(values)
    out = np.where(has, values, -np.inf).max(axis=1) if values.shape[1] else np.zeros(len(values))
    out[~has.any(axis=1)] = np.nan
    return out


def quality_replicates(
    labels: np.ndarray,
    n_classes: int,
    *,
    expl: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    golden: np.ndarray | None = None,
    fleiss_raters: np.ndarray | None = None,
    min_co_labeled: int = 1,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    groups: np.ndarray | None = None,
    chunk: int = 250,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates (one row per resample) of every quality agreement figure.

    Keys: class_mean/class_std (B, C), macro_mean, macro_std, pairs_bar, class_average_mean,
    class_average_std, class_average_bar, kappa_mean (B,); with `expl`: expl_mean/expl_std
    (B, E) and expl_average (B,); fleiss (on golden images, over `fleiss_raters`) and alpha
    (nominal), alpha_golden (B,). Pairwise figures and alpha use the images in `rows` (default all),
    Fleiss' kappa and alpha_golden the `golden` ones (default all); every image is resampled.
    """
    labels = check_labels(labels, n_classes)
    n = labels.shape[0]
    scope = np.ones(n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    table = PairTable(labels, n_classes, expl, rows=scope)
    gold = np.ones(n, dtype=bool) if golden is None else np.asarray(golden, dtype=bool)
    sel = labels[:, fleiss_raters] if fleiss_raters is not None else labels
    p_item, votes, n_fleiss = fleiss_parts(np.where(gold[:, None], sel, -1), n_classes)
    fleiss_sums = RowSums(np.concatenate([p_item[:, None], votes], axis=1))
    alpha_sums = CoincidenceSums(labels, np.arange(n_classes), scope)
    alpha_golden_sums = CoincidenceSums(labels, np.arange(n_classes), gold)
    out: dict[str, list[np.ndarray]] = {}

    def add(key: str, value: np.ndarray) -> None:
        out.setdefault(key, []).append(value)

    for w in bootstrap_weights(n, resamples, seed, groups, chunk):
        wt = as_columns(w)
        cls, ex = table.stats(wt, min_co_labeled)
        for key in ("class_mean", "class_std", "macro_mean", "macro_std", "kappa_mean"):
            add(key, getattr(cls, key))
        for key in ("pairs_bar", "class_average_mean", "class_average_std", "class_average_bar"):
            add(key, getattr(cls, key))
        if ex is not None:
            add("expl_mean", ex.class_mean)
            add("expl_std", ex.class_std)
            add("expl_average", mean_std(ex.class_mean, axis=1)[0])
        f = fleiss_sums(wt)
        add("fleiss", fleiss_from_sums(f[:, 0], f[:, 1:], n_fleiss))
        for key, sums in (("alpha", alpha_sums), ("alpha_golden", alpha_golden_sums)):
            add(key, alpha_from_coincidences(sums(wt), "nominal", np.arange(n_classes)))
    return {key: np.concatenate(parts) for key, parts in out.items()}


def severity_replicates(
    grades: np.ndarray,
    codes: np.ndarray,
    scale: Sequence[float],
    *,
    rows: np.ndarray | None = None,
    golden: np.ndarray | None = None,
    fleiss_raters: np.ndarray | None = None,
    min_co_labeled: int = 1,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    groups: np.ndarray | None = None,
    chunk: int = 250,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the severity figures: per-rater RMSE and the bar on golden images
    (rmse, rmse_loo (B, R); bar, bar_loo (B,)), quadratic kappa mean, Fleiss' kappa on golden
    images, Krippendorff's alpha ordinal and interval (B,). Kappa and alpha use the images in
    `rows` (default all), the others the `golden` ones; every image is resampled."""
    g = np.asarray(grades, dtype=float)
    n = g.shape[0]
    scope = np.ones(n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    gold = np.ones(n, dtype=bool) if golden is None else np.asarray(golden, dtype=bool)
    sq, ok, sq_loo, ok_loo = (x * gold[:, None] for x in rmse_parts(g))
    rmse_sums = RowSums(np.concatenate([sq, ok, sq_loo, ok_loo], axis=1))
    r = g.shape[1]
    pairs = SeverityPairTable(codes, rows=scope)
    sel = codes[:, fleiss_raters] if fleiss_raters is not None else codes
    p_item, votes, n_fleiss = fleiss_parts(np.where(gold[:, None], sel, -1), len(scale))
    fleiss_sums = RowSums(np.concatenate([p_item[:, None], votes], axis=1))
    alpha_sums = CoincidenceSums(g, scale, scope)
    out: dict[str, list[np.ndarray]] = {}

    def add(key: str, value: np.ndarray) -> None:
        out.setdefault(key, []).append(value)

    for w in bootstrap_weights(n, resamples, seed, groups, chunk):
        wt = as_columns(w)
        s = rmse_sums(wt)
        rmse = rmse_from_sums(s[:, :r], s[:, r : 2 * r])
        rmse_loo = rmse_from_sums(s[:, 2 * r : 3 * r], s[:, 3 * r :])
        add("rmse", rmse)
        add("rmse_loo", rmse_loo)
        add("bar", worst(rmse))
        add("bar_loo", worst(rmse_loo))
        add("kappa_mean", pairs.kappa_mean(wt, min_co_labeled))
        f = fleiss_sums(wt)
        add("fleiss", fleiss_from_sums(f[:, 0], f[:, 1:], n_fleiss))
        oc = alpha_sums(wt)
        add("alpha_ordinal", alpha_from_coincidences(oc, "ordinal", scale))
        add("alpha_interval", alpha_from_coincidences(oc, "interval", scale))
    return {key: np.concatenate(parts) for key, parts in out.items()}


def intervals(replicates: np.ndarray, level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED):
    """Percentile intervals of (B,) or (B, ...) replicates: one Interval, or nested lists of them."""
    arr = np.asarray(replicates, dtype=float)
    if arr.ndim == 1:
        return percentile_interval(arr, level, seed)
    return [intervals(arr[:, i], level, seed) for i in range(arr.shape[1])]
