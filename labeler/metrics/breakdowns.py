"""Fairness breakdowns: agreement per Fitzpatrick skin type and per body site, with intervals.

Groups come from the import manifest. Fitzpatrick: each type I-VI, the usual pairs I-II, III-IV,
V-VI, and "unknown" for images without a (parseable) type; body site: each site (compared without
case or surrounding spaces) and "unknown". A group with fewer labeled images than a minimum
(default 30) is still reported, flagged "too few to say".

Per group, quality: the pairwise macro F1 (docs/domain.md section 5: per pair the mean of its defined
per-class F1s, then mean and population std over pairs); severity: the mean consensus grade and
the RMSE of every grade against its image's consensus (images graded at least twice; the consensus
includes the grade, as the acne severity study's RMSE). Intervals: percentile bootstrap over the group's images
(whole cases with case ids) from labeler.metrics.bootstrap; every figure is a weighted sum over
images, so a block of resamples is one matrix product.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from labeler.metrics._arrays import check_labels, safe_divide, skinny_product
from labeler.metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    bootstrap_weights,
    percentile_interval,
)
from labeler.metrics.severity import check_grades

DEFAULT_MIN_GROUP_IMAGES = 30
UNKNOWN = "unknown"
FITZPATRICK_NAMES = ("I", "II", "III", "IV", "V", "VI")
FITZPATRICK_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("I-II", (1, 2)),
    ("III-IV", (3, 4)),
    ("V-VI", (5, 6)),
)
_ROMAN = {name: i + 1 for i, name in enumerate(FITZPATRICK_NAMES)}
_FITZ_RE = re.compile(
    r"^(?:fitzpatrick|skin|photo)?\s*(?:skin)?\s*(?:type|fst|fp|st)?\s*[:#-]?\s*"
    r"(?P<value>vi|iv|v|i{1,3}|[1-6])$"
)


def parse_fitzpatrick(value: object) -> int | None:
    """Fitzpatrick type 1-6 from 3, "3", "III", "iii", "type III", "Type 3", "FST III"; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value) if 1 <= int(value) <= 6 else None
    if isinstance(value, float | np.floating):
        return int(value) if float(value).is_integer() and 1 <= value <= 6 else None
    text = re.sub(r"\s+", " ", str(value)).strip().lower()
    match = _FITZ_RE.match(text)
    if not match:
        return None
    token = match.group("value")
    return int(token) if token.isdigit() else _ROMAN[token.upper()]


@dataclass(frozen=True)
class Group:
    """One breakdown group: its name and which images belong to it."""

    name: str
    members: np.ndarray  # (n_images,) bool


def fitzpatrick_groups(values: Iterable[object]) -> list[Group]:
    """Each type I-VI, then I-II, III-IV, V-VI, then "unknown" (missing or unparseable)."""
    types = np.array([parse_fitzpatrick(v) or 0 for v in values], dtype=np.int64)
    out = [Group(name, types == i + 1) for i, name in enumerate(FITZPATRICK_NAMES)]
    out += [Group(name, np.isin(types, members)) for name, members in FITZPATRICK_GROUPS]
    out.append(Group(UNKNOWN, types == 0))
    return out


# where an image's Fitzpatrick type came from (fitzpatrick_with_fallback's source codes)
FITZPATRICK_SOURCES = ("manifest", "raters", UNKNOWN)
FROM_MANIFEST, FROM_RATERS, FROM_NOWHERE = 0, 1, 2


def fitzpatrick_with_fallback(
    manifest: Iterable[object], rater_fused: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each image's Fitzpatrick type (1-6, 0 unknown) and its source (FITZPATRICK_SOURCES index):
    the import manifest's type where it has a parseable one, else the raters' fused type (1-6;
    -1 for a tie or no graded answer leaves the image unknown)."""
    types = np.array([parse_fitzpatrick(v) or 0 for v in manifest], dtype=np.int64)
    fused = np.zeros_like(types)
    if rater_fused is not None:
        arr = np.asarray(rater_fused, dtype=np.int64)
        fused = np.where((arr >= 1) & (arr <= 6), arr, 0)
    known = types > 0
    source = np.where(known, FROM_MANIFEST, np.where(fused > 0, FROM_RATERS, FROM_NOWHERE))
    return np.where(known, types, fused), source


def body_site_groups(values: Iterable[object]) -> list[Group]:
    """One group per body site (case and spacing ignored, first spelling kept), then "unknown"."""
    keys: list[str] = []
    shown: dict[str, str] = {}
    for v in values:
        text = re.sub(r"\s+", " ", str(v)).strip() if v is not None else ""
        key = text.lower()
        keys.append(key)
        if key:
            shown.setdefault(key, text)
    arr = np.array(keys, dtype=object)
    out = [Group(shown[key], arr == key) for key in sorted(shown)]
    out.append(Group(UNKNOWN, arr == ""))
    return out


@dataclass(frozen=True)
class GroupFigure:
    """A figure for one group, with its interval and whether the group is large enough to say."""

    name: str
    n_images: int  # images of the group in scope
    n_labeled: int  # of those, images with at least one label (the count behind the flag)
    too_few: bool  # fewer labeled images than the minimum: shown, but "too few to say"
    value: float  # NaN when undefined
    std: float  # spread behind the value (over pairs / over grades), NaN when not applicable
    n_units: int  # pairs (quality) or grades (severity) behind the value
    interval: Interval | None
    extra: dict[str, float]  # further figures of the group (severity: the mean consensus)


class _PairFeatures:
    """Per rater pair a < b: its co-labeled images and their TP / positive indicators per class.

    Stored per pair so a resample costs one small product per pair over that pair's images (the
    cost follows the (image, pair) incidences, not images x pairs).
    """

    def __init__(self, labels: np.ndarray, n_classes: int):
        lab = labels >= 0
        hot = (labels[:, :, None] == np.arange(n_classes)) & lab[:, :, None]  # (n, R, C)
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        r = labels.shape[1]
        for a in range(r):
            for b in range(a + 1, r):
                idx = np.flatnonzero(lab[:, a] & lab[:, b])
                ha, hb = hot[idx, a], hot[idx, b]
                feat = np.concatenate(
                    [ha & hb, ha.astype(np.float32) + hb, np.ones((idx.size, 1))],
                    axis=1,
                    dtype=np.float32,  # 0/1/2 indicators: float32 sums exact below 2**24
                )
                self.parts.append((idx, np.ascontiguousarray(feat.T)))

    def restrict(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per pair: positions within `rows` (sorted image indices) of its images, their features."""
        out = []
        for idx, feat_t in self.parts:
            at = np.searchsorted(rows, idx)
            inside = (at < rows.size) & (rows[np.minimum(at, rows.size - 1)] == idx)
            out.append((at[inside], np.ascontiguousarray(feat_t[:, inside])))
        return out


def _pair_sums(
    parts: list[tuple[np.ndarray, np.ndarray]], wt: np.ndarray, width: int
) -> np.ndarray:
    """(k, P, width) weighted sums per pair from (n_rows, k) weight columns."""
    out = np.zeros((len(parts), width, wt.shape[1]))
    for p, (at, feat_t) in enumerate(parts):
        if at.size:
            out[p] = skinny_product(feat_t, wt[at])
    return out.transpose(2, 0, 1)


def _macro_from_sums(s: np.ndarray, c: int, min_co: int) -> tuple[np.ndarray, ...]:
    """Mean, population std and count over pairs of the pairwise macro F1, from (.., P, 2C+1) sums."""
    tp, pos, co = s[..., :c], s[..., c : 2 * c], s[..., 2 * c]
    f1 = safe_divide(2.0 * tp, pos)  # NaN where the class is in neither rater's labels
    defined = ~np.isnan(f1)
    macro = safe_divide(np.where(defined, f1, 0.0).sum(axis=-1), defined.sum(axis=-1))  # (.., P)
    ok = (co >= min_co) & ~np.isnan(macro)
    count = ok.sum(axis=-1)
    mean = safe_divide(np.where(ok, macro, 0.0).sum(axis=-1), count)
    dev = np.where(ok, macro - np.expand_dims(mean, -1), 0.0)
    std = np.sqrt(safe_divide((dev * dev).sum(axis=-1), count))
    return mean, std, count


def _groups_of(groups: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if groups is None else np.asarray(groups)[rows]


def _group_interval(
    rows: np.ndarray,
    cases: np.ndarray | None,
    resamples: int,
    seed: int,
    level: float,
    replicate: Callable[[np.ndarray], np.ndarray],
) -> Interval | None:
    """One group's percentile interval: `replicate` maps a chunk of count weights over the group's
    rows (whole cases drawn together) to that chunk's replicates."""
    if not resamples or not rows.size:
        return None
    reps = [
        replicate(w)
        for w in bootstrap_weights(rows.size, resamples, seed, groups=_groups_of(cases, rows))
    ]
    return percentile_interval(np.concatenate(reps), level, seed)


def quality_breakdown(
    labels: np.ndarray,
    n_classes: int,
    breakdown: list[Group],
    *,
    scope: np.ndarray | None = None,
    cases: np.ndarray | None = None,
    min_co_labeled: int = 1,
    min_group_images: int = DEFAULT_MIN_GROUP_IMAGES,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> list[GroupFigure]:
    """Pairwise macro F1 (mean ± std over rater pairs) per group with an interval on the mean."""
    labels = check_labels(labels, n_classes)
    n = labels.shape[0]
    in_scope = np.ones(n, dtype=bool) if scope is None else np.asarray(scope, dtype=bool)
    labeled = (labels >= 0).any(axis=1)
    multi = (labels >= 0).sum(axis=1) >= 2  # only these add to any pair's counts
    table = _PairFeatures(labels, n_classes)
    out = []
    for group in breakdown:
        members = group.members & in_scope
        rows = np.flatnonzero(members & multi)
        parts = table.restrict(rows) if rows.size else []
        width = 2 * n_classes + 1
        point = _pair_sums(parts, np.ones((rows.size, 1), dtype=np.float32), width)[0]
        mean, std, count = _macro_from_sums(point, n_classes, min_co_labeled)
        interval = _group_interval(
            rows,
            cases,
            resamples,
            seed,
            level,
            lambda w, parts=parts, width=width: _macro_from_sums(
                _pair_sums(parts, np.ascontiguousarray(w.T, dtype=np.float32), width),
                n_classes,
                min_co_labeled,
            )[0],
        )
        n_labeled = int((members & labeled).sum())
        out.append(
            GroupFigure(
                name=group.name,
                n_images=int(members.sum()),
                n_labeled=n_labeled,
                too_few=n_labeled < min_group_images,
                value=float(mean),
                std=float(std),
                n_units=int(count),
                interval=interval,
                extra={},
            )
        )
    return out


def severity_breakdown(
    grades: np.ndarray,
    breakdown: list[Group],
    *,
    scope: np.ndarray | None = None,
    cases: np.ndarray | None = None,
    min_group_images: int = DEFAULT_MIN_GROUP_IMAGES,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> list[GroupFigure]:
    """RMSE of grades against their image's consensus (value) and mean consensus (extra) per group."""
    g = check_grades(grades)
    n = g.shape[0]
    in_scope = np.ones(n, dtype=bool) if scope is None else np.asarray(scope, dtype=bool)
    ok = ~np.isnan(g)
    count = ok.sum(axis=1)
    y = np.where(ok, g, 0.0)
    consensus = safe_divide(y.sum(axis=1), count)
    sq = np.where(ok, (y - np.nan_to_num(consensus)[:, None]) ** 2, 0.0).sum(axis=1)
    multi = count >= 2
    # Per image: [graded, consensus, multi-graded grades, their squared errors]
    feats = np.column_stack(
        [count > 0, np.nan_to_num(consensus), np.where(multi, count, 0), np.where(multi, sq, 0.0)]
    ).astype(np.float64)

    def figures(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.sqrt(safe_divide(s[..., 3], s[..., 2])),
            safe_divide(s[..., 1], s[..., 0]),
        )

    out = []
    for group in breakdown:
        members = group.members & in_scope
        rows = np.flatnonzero(members & (count > 0))
        f = feats[rows]
        rmse, mean_cons = figures(f.sum(axis=0))
        interval = cons_interval = None
        if resamples and rows.size:
            f32 = f.astype(np.float32)  # rounding 1e-7 relative: far below an interval's width
            reps = [
                figures((w.astype(np.float32) @ f32).astype(np.float64))
                for w in bootstrap_weights(
                    rows.size, resamples, seed, groups=_groups_of(cases, rows)
                )
            ]
            interval = percentile_interval(np.concatenate([a for a, _ in reps]), level, seed)
            cons_interval = percentile_interval(np.concatenate([b for _, b in reps]), level, seed)
        extra = {"mean_consensus": float(mean_cons)}
        if cons_interval is not None:
            extra["mean_consensus_low"] = cons_interval.low
            extra["mean_consensus_high"] = cons_interval.high
        n_labeled = int(rows.size)
        out.append(
            GroupFigure(
                name=group.name,
                n_images=int(members.sum()),
                n_labeled=n_labeled,
                too_few=n_labeled < min_group_images,
                value=float(rmse),
                std=float("nan"),
                n_units=int(f[:, 2].sum()),
                interval=interval,
                extra=extra,
            )
        )
    return out


def _group_figure(
    name: str, n: int, too_few_below: int, value: float, units: int, interval: Interval | None
) -> GroupFigure:
    return GroupFigure(
        name=name,
        n_images=n,
        n_labeled=n,
        too_few=n < too_few_below,
        value=value,
        std=float("nan"),
        n_units=units,
        interval=interval,
        extra={},
    )


def _macro_f1_from_counts(s: np.ndarray, c: int) -> np.ndarray:
    """Macro F1 over the classes present in the reference or the prediction, from (.., 3C) sums."""
    tp, true, pred = s[..., :c], s[..., c : 2 * c], s[..., 2 * c :]
    f1 = safe_divide(2.0 * tp, true + pred)  # NaN for a class in neither: left out
    defined = ~np.isnan(f1)
    return safe_divide(np.where(defined, f1, 0.0).sum(axis=-1), defined.sum(axis=-1))


def model_quality_breakdown(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    breakdown: list[Group],
    *,
    cases: np.ndarray | None = None,
    min_group_images: int = DEFAULT_MIN_GROUP_IMAGES,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> list[GroupFigure]:
    """A model's macro F1 against the reference class per group (classes present in either)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    cls = np.arange(n_classes)
    th, ph = t[:, None] == cls, p[:, None] == cls
    feats = np.concatenate([th & ph, th, ph], axis=1).astype(np.float32)
    out = []
    for group in breakdown:
        rows = np.flatnonzero(group.members)
        f = feats[rows]
        value = float(_macro_f1_from_counts(f.sum(axis=0, dtype=np.float64), n_classes))
        interval = _group_interval(
            rows,
            cases,
            resamples,
            seed,
            level,
            lambda w, f=f: _macro_f1_from_counts(w.astype(np.float32) @ f, n_classes),
        )
        out.append(
            _group_figure(
                group.name, int(rows.size), min_group_images, value, int(rows.size), interval
            )
        )
    return out


def model_severity_breakdown(
    truth: np.ndarray,
    pred: np.ndarray,
    breakdown: list[Group],
    *,
    cases: np.ndarray | None = None,
    min_group_images: int = DEFAULT_MIN_GROUP_IMAGES,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> list[GroupFigure]:
    """A model's RMSE against the consensus per group."""
    sq = (np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)) ** 2
    out = []
    for group in breakdown:
        rows = np.flatnonzero(group.members)
        err = sq[rows]
        value = float(np.sqrt(err.mean())) if rows.size else float("nan")
        interval = _group_interval(
            rows,
            cases,
            resamples,
            seed,
            level,
            lambda w, err=err: np.sqrt(safe_divide(w @ err, w.sum(axis=1))),
        )
        out.append(
            _group_figure(
                group.name, int(rows.size), min_group_images, value, int(rows.size), interval
            )
        )
    return out
