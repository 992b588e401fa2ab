"""Benchmark the panel figures at ImageQX scale: Dawid-Skene, fairness breakdowns, tendencies, ICC.

Run: .venv/bin/python bench/panel.py [--seed N] [--resamples B]
Uses bench/metrics.py's synthetic project (36,509 images, 12 raters, 1,000 golden labeled by all,
3 raters on every other image) plus a Fitzpatrick type, a body site and a case id (1-3 images) per
image. Times each figure with its B-resample bootstrap interval, BLAS on one thread and on the
default threads, and the peak memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits  # installed with scikit-learn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics import N_CLASSES, make_project  # bench/metrics.py

from labeler.metrics.breakdowns import (
    body_site_groups,
    fitzpatrick_groups,
    quality_breakdown,
    severity_breakdown,
)
from labeler.metrics.dawid_skene import dawid_skene
from labeler.metrics.severity_reliability import intraclass_correlation, rater_mae
from labeler.metrics.tendencies import rater_tendencies

FITZ_SHARE = [0.10, 0.25, 0.30, 0.20, 0.10, 0.03, 0.02]  # I..VI, unknown
SITES = ["face", "scalp", "trunk", "arm", "hand", "leg", "foot", "genital", None]


def timed(fn: Callable[[], object]) -> tuple[float, float, float]:
    """Wall seconds with BLAS on one thread, CPU seconds of that run (what a busy shared host
    does not inflate), and wall seconds with BLAS on its default threads."""
    with threadpool_limits(1):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        one, one_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    fn()
    return one, one_cpu, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    p = make_project(args.seed)
    rng = np.random.default_rng(args.seed + 1)
    n = p.labels.shape[0]
    fitz = rng.choice(["I", "II", "III", "IV", "V", "VI", None], n, p=FITZ_SHARE)
    sites = rng.choice(np.array(SITES, dtype=object), n)
    cases = np.cumsum(rng.random(n) < 0.5)  # about two images per case
    b = args.resamples
    labeled = p.labels >= 0
    onehot = (p.labels[:, :, None] == np.arange(N_CLASSES)) & labeled[:, :, None]
    golden_raters = (~np.isnan(p.grades[p.golden])).any(axis=0)
    jobs: list[tuple[str, Callable[[], object]]] = [
        ("Dawid-Skene fusion (EM to convergence)", lambda: dawid_skene(p.labels, N_CLASSES)),
        (
            f"fairness, Fitzpatrick (10 groups), pairwise macro F1, B={b}",
            lambda: quality_breakdown(
                p.labels, N_CLASSES, fitzpatrick_groups(fitz), cases=cases, resamples=b
            ),
        ),
        (
            f"fairness, body site (9 groups), pairwise macro F1, B={b}",
            lambda: quality_breakdown(
                p.labels, N_CLASSES, body_site_groups(sites), cases=cases, resamples=b
            ),
        ),
        (
            f"fairness, Fitzpatrick, severity RMSE + consensus, B={b}",
            lambda: severity_breakdown(
                p.grades, fitzpatrick_groups(fitz), cases=cases, resamples=b
            ),
        ),
        (
            f"tendencies, classes, B={b}",
            lambda: rater_tendencies(onehot, labeled, groups=cases, resamples=b),
        ),
        (
            f"tendencies, explanations, B={b}",
            lambda: rater_tendencies(p.expl, labeled, groups=cases, resamples=b),
        ),
        (
            f"ICC(2,1) + ICC(3,1), golden, B={b}",
            lambda: intraclass_correlation(
                p.grades, rows=p.golden, raters=golden_raters, groups=cases, resamples=b
            ),
        ),
        (
            f"per-rater MAE, golden, B={b}",
            lambda: rater_mae(p.grades, p.golden, groups=cases, resamples=b),
        ),
    ]
    print(f"project: {n} images, {p.labels.shape[1]} raters, {int(p.golden.sum())} golden")
    total_one = total_cpu = total_default = 0.0
    for name, fn in jobs:
        one, cpu, default = timed(fn)
        total_one += one
        total_cpu += cpu
        total_default += default
        print(
            f"{name}: {one:.2f} s (BLAS 1 thread; {cpu:.2f} s CPU), {default:.2f} s (default threads)"
        )
    print(
        f"all panel figures: {total_one:.2f} s (BLAS 1 thread; {total_cpu:.2f} s CPU), "
        f"{total_default:.2f} s (default threads)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of the process: {peak:.0f} MB")
    ds = dawid_skene(p.labels, N_CLASSES)
    print(f"Dawid-Skene: {ds.n_iter} iterations, converged {ds.converged}")


if __name__ == "__main__":
    main()
