"""Benchmark the agreement figures at ImageQX scale against a per-pair scikit-learn loop.

Run: .venv/bin/python bench/metrics.py [--seed N] [--repeats N]
Synthetic project: 36,509 images, 12 raters, a 1,000-image golden set labeled by all 12 and every
other image labeled by 3 raters; ImageQX-like class skew, poor-quality explanations, diagnoses
for lesion votes and severity grades on every labeled cell.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits  # installed with scikit-learn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labeler import metrics as m
from labeler.metrics.bootstrap import DEFAULT_RESAMPLES
from labeler.metrics.intervals import intervals, quality_replicates, severity_replicates

N_IMAGES = 36_509
N_RATERS = 12
N_GOLDEN = 1_000
OVERLAP = 3
N_CLASSES = 4  # lesion, no_skin, healthy_skin, poor_quality
CLASS_PRIOR = (
    np.array([22_337, 726, 6_324, 7_122]) / 36_509
)  # the ImageQX paper's Table 1, train + test
N_EXPL = 6  # too far away, bad framing, lesion covered, blurry, bad light, low resolution
EXPL_PRIOR = np.array([0.08, 0.15, 0.05, 0.40, 0.35, 0.28])
N_CODES = 300  # distinct ICD-10 codes in use
SCALE = np.arange(1.0, 6.0)


@dataclass(frozen=True)
class Project:
    """Synthetic label arrays in the conventions labeler.metrics expects."""

    labels: np.ndarray  # (n, R) int, -1 missing
    expl: np.ndarray  # (n, R, E) bool
    codes: np.ndarray  # (n, R) int diagnosis codes, -1 missing / non-lesion
    grades: np.ndarray  # (n, R) float, NaN missing
    golden: np.ndarray  # (n,) bool


def make_project(seed: int) -> Project:
    """Build the synthetic ImageQX-scale project."""
    rng = np.random.default_rng(seed)
    n, r = N_IMAGES, N_RATERS
    golden = np.zeros(n, dtype=bool)
    golden[rng.choice(n, N_GOLDEN, replace=False)] = True
    # Each non-golden image gets OVERLAP distinct raters; golden images get all of them.
    ranks = np.argsort(rng.random((n, r)), axis=1)
    labeled = (ranks < OVERLAP) | golden[:, None]

    truth = rng.choice(N_CLASSES, size=n, p=CLASS_PRIOR)
    accuracy = rng.uniform(0.70, 0.92, size=r)
    keep = rng.random((n, r)) < accuracy
    noise = rng.choice(N_CLASSES, size=(n, r), p=CLASS_PRIOR)
    labels = np.where(keep, truth[:, None], noise)
    labels = np.where(labeled, labels, -1)

    true_expl = rng.random((n, N_EXPL)) < EXPL_PRIOR
    pick = rng.random((n, r, N_EXPL)) < np.where(true_expl[:, None, :], 0.7, 0.08)
    poor = labels == 3
    none = poor & ~pick.any(axis=2)
    pick[none, rng.integers(0, N_EXPL, size=int(none.sum()))] = True
    expl = pick & poor[:, :, None]

    zipf = 1.0 / np.arange(1, N_CODES + 1)
    true_code = rng.choice(N_CODES, size=n, p=zipf / zipf.sum())
    other = rng.choice(N_CODES, size=(n, r), p=zipf / zipf.sum())
    codes = np.where(rng.random((n, r)) < 0.6, true_code[:, None], other)
    codes = np.where(labels == 0, codes, -1)

    severity = rng.uniform(1.0, 5.0, size=n)
    bias = rng.normal(0.0, 0.2, size=r)
    grades = np.clip(np.rint(severity[:, None] + bias + rng.normal(0, 0.5, (n, r))), 1, 5)
    not_graded = rng.random((n, r)) < 0.03  # "not acne" / "cannot assess" answers
    grades = np.where(labeled & ~not_graded, grades, np.nan)
    return Project(labels=labels, expl=expl, codes=codes, grades=grades, golden=golden)


def all_figures(p: Project) -> dict[str, object]:
    """Every fusion and agreement figure of docs/domain.md sections 4 and 5."""
    fusion = m.fuse_quality(p.labels, N_CLASSES)
    golden_labels = p.labels[p.golden]
    return {
        "fusion": fusion,
        "explanations": m.explanation_relevance(p.expl, p.labels, k=1),
        "diagnoses": m.fuse_diagnoses(p.codes),
        "severity": m.severity_consensus(p.grades),
        "pairwise_f1": m.pairwise_f1(p.labels, N_CLASSES),
        "pairwise_expl_f1": m.pairwise_explanation_f1(p.expl, p.labels),
        "rmse": m.rater_rmse(p.grades, golden=p.golden),
        "rater_vs_fused_golden": m.rater_vs_fused(
            p.labels, fusion.plurality, N_CLASSES, golden=p.golden
        ),
        "confusion_all": m.rater_vs_fused(p.labels, fusion.plurality, N_CLASSES),
        "kappa": m.pairwise_kappa(p.labels, N_CLASSES),
        "severity_kappa": m.pairwise_severity_kappa(p.grades),
        "fleiss_golden": m.fleiss_kappa(p.labels, N_CLASSES, golden=p.golden),
        "alpha_nominal_golden": m.krippendorff_alpha(golden_labels, "nominal"),
        "alpha_nominal_all": m.krippendorff_alpha(p.labels, "nominal"),
        "alpha_ordinal": m.krippendorff_alpha(p.grades, "ordinal", value_domain=SCALE),
        "alpha_interval": m.krippendorff_alpha(p.grades, "interval"),
    }


def all_intervals(p: Project, resamples: int = DEFAULT_RESAMPLES) -> dict[str, object]:
    """Every headline interval (B resamples of images): the quality and severity agreement
    figures, and a paired model-versus-raters comparison on the golden set for each protocol
    (a synthetic model: the fused class right 85% of the time; the consensus plus noise)."""
    from labeler.ml.comparison import (
        GoldenPanel,
        compare_quality,
        compare_severity,
        quality_predictions,
        severity_predictions,
    )

    seconds = {}
    start = time.perf_counter()
    quality = quality_replicates(
        p.labels, N_CLASSES, expl=p.expl, golden=p.golden, resamples=resamples
    )
    seconds["quality agreement"] = time.perf_counter() - start
    start = time.perf_counter()
    codes = m.grade_codes(p.grades, SCALE)
    severity = severity_replicates(p.grades, codes, SCALE, golden=p.golden, resamples=resamples)
    seconds["severity agreement"] = time.perf_counter() - start
    start = time.perf_counter()
    g = p.golden
    names = ("lesion", "no_skin", "healthy_skin", "poor_quality")
    expl_names = tuple(f"e{j}" for j in range(N_EXPL))
    q_panel = GoldenPanel(
        image_ids=np.flatnonzero(g),
        groups=None,
        class_names=names,
        classes=p.labels[g],
        explanation_names=expl_names,
        explanations=p.expl[g],
    )
    rng = np.random.default_rng(1)
    fused = m.fuse_quality(p.labels[g], N_CLASSES).plurality
    rows = np.flatnonzero(fused >= 0)
    y = fused[rows]
    pred = np.where(rng.random(rows.size) < 0.85, y, rng.integers(0, N_CLASSES, rows.size))
    truth_e = m.explanation_relevance(p.expl[g], p.labels[g]).relevant[rows]
    pred_e = truth_e ^ (rng.random(truth_e.shape) < 0.1)
    preds = quality_predictions(q_panel, rows, names, expl_names, y, pred, truth_e, pred_e)
    q_model = compare_quality(q_panel, [preds], resamples=resamples)
    seconds["quality model vs raters"] = time.perf_counter() - start
    start = time.perf_counter()
    s_panel = GoldenPanel(image_ids=np.flatnonzero(g), groups=None, grades=p.grades[g])
    cons = m.severity_consensus(p.grades[g])
    s_rows = np.flatnonzero(cons.count > 0)
    s_pred = cons.mean[s_rows] + rng.normal(0, 0.4, s_rows.size)
    s_in, s_truth, s_model_pred = severity_predictions(s_panel, s_rows, cons.mean[s_rows], s_pred)
    s_model = compare_severity(s_panel, s_in, s_truth, [s_model_pred], resamples=resamples)
    seconds["severity model vs raters"] = time.perf_counter() - start
    return {
        "quality": quality,
        "severity": severity,
        "q_model": q_model,
        "s_model": s_model,
        "seconds": seconds,
    }


def timed_intervals(p: Project, resamples: int) -> tuple[float, float, dict[str, object]]:
    """Seconds and peak traced memory (MB, NumPy's buffers included) of all_intervals; the
    process CPU seconds go in out["cpu"] (what a busy shared host cannot inflate)."""
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    out = all_intervals(p, resamples)
    seconds = time.perf_counter() - start
    out["cpu"] = time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, out


def pairwise_only(p: Project) -> tuple[m.PairwiseF1, m.PairwiseKappa]:
    """The figures the scikit-learn loop computes: pairwise F1 per class and Cohen's kappa."""
    return m.pairwise_f1(p.labels, N_CLASSES), m.pairwise_kappa(p.labels, N_CLASSES)


def sklearn_loop(p: Project) -> tuple[np.ndarray, np.ndarray]:
    """Straightforward per-pair loop: f1_score per pair per class and cohen_kappa_score per pair."""
    from sklearn.metrics import cohen_kappa_score, f1_score

    pairs = list(combinations(range(N_RATERS), 2))
    f1 = np.full((len(pairs), N_CLASSES), np.nan)
    kappa = np.full(len(pairs), np.nan)
    for i, (a, b) in enumerate(pairs):
        co = (p.labels[:, a] >= 0) & (p.labels[:, b] >= 0)
        ya, yb = p.labels[co, a], p.labels[co, b]
        for c in range(N_CLASSES):
            if c in ya or c in yb:
                f1[i, c] = f1_score(yb == c, ya == c)
        kappa[i] = cohen_kappa_score(ya, yb, labels=list(range(N_CLASSES)))
    return f1, kappa


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def write_database(p: Project, url: str) -> int:
    """Store the synthetic project as real rows (images, golden set, labels) through the app's schema."""
    from sqlalchemy import insert

    from labeler.allocation.models import GoldenImage
    from labeler.auth.models import User
    from labeler.db import make_engine
    from labeler.images.models import Image
    from labeler.labeling.models import Label
    from labeler.migrate import upgrade
    from labeler.projects.models import Project as ProjectRow
    from labeler.projects.models import Protocol, default_settings
    from labeler.protocols.explanations import EXPLANATION_CODES
    from labeler.protocols.quality import QUALITY_DECISIONS

    upgrade(url)
    engine = make_engine(url)
    n, r = p.labels.shape
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {"id": j + 1, "email": f"r{j}@bench.test", "name": f"Rater {j + 1}"}
                for j in range(r)
            ],
        )
        conn.execute(
            insert(ProjectRow),
            [
                {
                    "id": 1,
                    "name": "bench",
                    "protocol": Protocol.quality,
                    "settings": default_settings(Protocol.quality),
                }
            ],
        )
        conn.execute(
            insert(Image),
            [
                {
                    "id": i + 1,
                    "project_id": 1,
                    "sha256": f"{i:064x}",
                    "filename": f"img{i}.jpg",
                    "width": 1,
                    "height": 1,
                    "format": "JPEG",
                    "byte_size": 1,
                    "display_key": "d",
                    "thumb_key": "t",
                    "original_key": "o",
                    "case_id": f"case{i // 2}",
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(GoldenImage),
            [{"project_id": 1, "image_id": int(i) + 1} for i in np.flatnonzero(p.golden)],
        )
        rows = []
        for i, j in zip(*np.nonzero(p.labels >= 0), strict=True):
            c = int(p.labels[i, j])
            rows.append(
                {
                    "project_id": 1,
                    "rater_id": int(j) + 1,
                    "image_id": int(i) + 1,
                    "decision": QUALITY_DECISIONS[c],
                    "icd10": f"L{int(p.codes[i, j]):02d}" if p.codes[i, j] >= 0 else None,
                    "explanations": [EXPLANATION_CODES[e] for e in np.flatnonzero(p.expl[i, j])],
                    "time_spent_ms": 4000,
                }
            )
        conn.execute(insert(Label), rows)
    engine.dispose()
    return len(rows)


def export_worker(url: str, kind: str, fmt: str) -> None:
    """Run one streamed export to /dev/null in this (child) process; print seconds and bytes."""
    from sqlalchemy.orm import Session

    from labeler.db import make_engine
    from labeler.projects.models import Project as ProjectRow
    from labeler.reports.export import export_chunks

    engine = make_engine(url)
    with Session(engine) as session:
        project = session.get(ProjectRow, 1)
        start = time.perf_counter()
        size = 0
        for chunk in export_chunks(session, project, kind, fmt):
            size += len(chunk)
        # VmHWM, not ru_maxrss: the latter keeps the forked parent's pages from before exec
        hwm = next(
            line
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmHWM")
        )
        print(f"{time.perf_counter() - start:.3f} {size} {int(hwm.split()[1]) / 1024:.0f}")


def export_figures(p: Project) -> None:
    """Time and peak memory (child process max RSS) of full fused and raw exports from a real database."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        start = time.perf_counter()
        n_rows = write_database(p, url)
        print(
            f"export database (SQLite, {n_rows} label rows) written in {time.perf_counter() - start:.1f} s"
        )
        for kind in ("fused", "raw"):
            for fmt in ("csv", "jsonl"):
                out = subprocess.run(
                    [sys.executable, __file__, "--export-worker", url, kind, fmt],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                secs, size, peak = out.stdout.split()
                print(
                    f"export {kind} {fmt}: {float(secs):.2f} s streamed, {int(size) / 1e6:.1f} MB, "
                    f"peak RSS of the whole exporting process {peak} MB (goals: < 5 s, < 300 MB)"
                )


def main() -> None:
    """Build the project, time the figures and the scikit-learn loop, print both plainly."""
    if len(sys.argv) == 5 and sys.argv[1] == "--export-worker":
        export_worker(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-export", action="store_true", help="skip the database export figures")
    args = parser.parse_args()

    start = time.perf_counter()
    project = make_project(args.seed)
    build = time.perf_counter() - start
    n_labels = int((project.labels >= 0).sum())
    print(f"project: {N_IMAGES} images, {N_RATERS} raters, {N_GOLDEN} golden, {n_labels} labels")
    print(f"built in {build:.2f} s")

    figures = all_figures(project)  # warm-up, and the figures printed below
    # OpenBLAS worker threads spin after each small product and take the core from the NumPy
    # element-wise work that follows; web workers should run BLAS single-threaded anyway.
    with threadpool_limits(limits=1, user_api="blas"):
        t_all = best_time(lambda: all_figures(project), args.repeats)
        t_pairs = best_time(lambda: pairwise_only(project), args.repeats)
    t_all_threaded = best_time(lambda: all_figures(project), args.repeats)
    t_loop = best_time(lambda: sklearn_loop(project), 1)

    # The loop must agree with the vectorized figures, or the comparison means nothing.
    loop_f1, loop_kappa = sklearn_loop(project)
    f1, kappa = figures["pairwise_f1"], figures["kappa"]
    iu = np.triu_indices(N_RATERS, k=1)
    assert np.allclose(f1.f1[iu], loop_f1, equal_nan=True)
    assert np.allclose(kappa.kappa[iu], loop_kappa, equal_nan=True)

    best = f"best of {args.repeats}"
    print(f"all agreement figures, BLAS 1 thread ({best}): {t_all * 1000:.1f} ms")
    print(f"all agreement figures, BLAS default threads ({best}): {t_all_threaded * 1000:.1f} ms")
    print(f"pairwise F1 + Cohen's kappa only, BLAS 1 thread ({best}): {t_pairs * 1000:.1f} ms")
    print(f"per-pair scikit-learn loop (66 pairs x 4 classes + 66 kappas): {t_loop * 1000:.1f} ms")
    print(f"speed-up, loop vs all figures (BLAS 1 thread): {t_loop / t_all:.1f}x")
    print(f"speed-up, loop vs all figures (BLAS default threads): {t_loop / t_all_threaded:.1f}x")
    print(f"speed-up, loop vs the same figures: {t_loop / t_pairs:.1f}x")

    names = ["lesion", "no_skin", "healthy_skin", "poor_quality"]
    print("pairwise F1 per class (mean ± std, pairs):")
    for c, name in enumerate(names):
        print(f"  {name}: {f1.mean[c]:.3f} ± {f1.std[c]:.3f} ({f1.n_pairs[c]})")
    print(f"  macro: {f1.macro_mean:.3f} ± {f1.macro_std:.3f} ({f1.macro_n_pairs})")
    ef1 = figures["pairwise_expl_f1"]
    print("pairwise explanation F1: " + ", ".join(f"{v:.3f}" for v in ef1.mean))
    fusion = figures["fusion"]
    print(f"ties: {int(fusion.is_tie.sum())} of {N_IMAGES} images unresolved")
    rmse = figures["rmse"]
    print(
        f"RMSE bar: {rmse.bar:.3f} (rater {rmse.bar_rater}); leave-one-out bar {rmse.bar_loo:.3f}"
    )
    print(f"Cohen's kappa: {kappa.mean:.3f} ± {kappa.std:.3f}")
    print(f"severity kappa (quadratic): {figures['severity_kappa'].mean:.3f}")
    print(f"Fleiss' kappa (golden): {figures['fleiss_golden'].kappa:.3f}")
    for key in ("alpha_nominal_golden", "alpha_nominal_all", "alpha_ordinal", "alpha_interval"):
        print(f"Krippendorff's alpha {key[6:]}: {figures[key].alpha:.3f}")
    interval_figures(project)
    if not args.no_export:
        export_figures(project)


def interval_figures(project: Project) -> None:
    """Time every headline interval (B = 2000) and print a few of them."""
    with threadpool_limits(limits=1, user_api="blas"):
        t_one, peak_one, out = timed_intervals(project, DEFAULT_RESAMPLES)
    t_threaded, peak_threaded, threaded = timed_intervals(project, DEFAULT_RESAMPLES)
    print(
        f"all intervals, B = {DEFAULT_RESAMPLES} (quality + severity agreement, paired model "
        f"comparisons), BLAS 1 thread: {t_one:.2f} s ({out['cpu']:.2f} s CPU), "
        f"peak {peak_one:.0f} MB traced"
    )
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in out["seconds"].items())
    print(f"  of which (BLAS 1 thread): {parts}")
    print(
        f"all intervals, B = {DEFAULT_RESAMPLES}, BLAS default threads: {t_threaded:.2f} s "
        f"({threaded['cpu']:.2f} s CPU), peak {peak_threaded:.0f} MB traced"
    )
    q, s = out["quality"], out["severity"]
    for label, reps in (
        ("macro F1 (pairs) mean", q["macro_mean"]),
        ("bar (a) mean - std over pairs", q["pairs_bar"]),
        ("bar (b) class average", q["class_average_bar"]),
        ("Cohen's kappa mean", q["kappa_mean"]),
        ("Fleiss' kappa (golden)", q["fleiss"]),
        ("alpha nominal", q["alpha"]),
        ("RMSE bar", s["bar"]),
        ("quadratic kappa mean", s["kappa_mean"]),
        ("alpha ordinal", s["alpha_ordinal"]),
    ):
        ci = intervals(reps)
        print(f"  95% interval, {label}: [{ci.low:.3f}, {ci.high:.3f}]")
    for name, v in (("quality", out["q_model"]), ("severity", out["s_model"])):
        iv = v["difference_interval"]
        print(
            f"  synthetic {name} model - bar: {v['difference']:.3f} "
            f"[{iv['low']:.3f}, {iv['high']:.3f}]: {v['verdict']}"
        )


if __name__ == "__main__":
    main()
