"""Fusion and agreement metrics: pure, vectorized functions over NumPy arrays (no ORM, no Flask).

Conventions: quality labels are int codes (n_images, n_raters) with -1 for "no label"; explanations
are bool (n_images, n_raters, n_expl) with a labeled mask; severity grades are floats with NaN.
"""

from labeler.metrics.agreement import (
    PairwiseF1,
    PairwiseKappa,
    RaterVsFused,
    co_occurrence,
    pairwise_explanation_f1,
    pairwise_f1,
    pairwise_kappa,
    pairwise_severity_kappa,
    rater_vs_fused,
)
from labeler.metrics.fusion import (
    DiagnosisFusion,
    ExplanationRelevance,
    QualityFusion,
    Resolution,
    explanation_relevance,
    fuse_diagnoses,
    fuse_quality,
)
from labeler.metrics.reliability import (
    FleissKappa,
    KrippendorffAlpha,
    fleiss_kappa,
    krippendorff_alpha,
)
from labeler.metrics.severity import (
    DEFAULT_EDGES,
    DEFAULT_SCALE,
    RaterRMSE,
    SeverityConsensus,
    grade_codes,
    rater_rmse,
    scale_edges,
    severity_consensus,
)

__all__ = [
    "DEFAULT_EDGES",
    "DEFAULT_SCALE",
    "DiagnosisFusion",
    "ExplanationRelevance",
    "FleissKappa",
    "KrippendorffAlpha",
    "PairwiseF1",
    "PairwiseKappa",
    "QualityFusion",
    "RaterRMSE",
    "RaterVsFused",
    "Resolution",
    "SeverityConsensus",
    "co_occurrence",
    "explanation_relevance",
    "fleiss_kappa",
    "fuse_diagnoses",
    "fuse_quality",
    "grade_codes",
    "krippendorff_alpha",
    "pairwise_explanation_f1",
    "pairwise_f1",
    "pairwise_kappa",
    "pairwise_severity_kappa",
    "rater_rmse",
    "rater_vs_fused",
    "scale_edges",
    "severity_consensus",
]
