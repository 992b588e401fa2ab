"""Fusion: quality plurality with explicit ties, explanation relevance, diagnosis plurality."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labeler.metrics import (
    Resolution,
    explanation_relevance,
    fuse_diagnoses,
    fuse_quality,
)

LESION, NO_SKIN, HEALTHY, POOR = 0, 1, 2, 3
C = 4


@st.composite
def label_sets(draw, max_classes: int = 5):
    """Label matrices (n_images, n_raters) with -1 for missing, plus the class count."""
    n_classes = draw(st.integers(1, max_classes))
    shape = (draw(st.integers(0, 25)), draw(st.integers(1, 7)))
    labels = draw(hnp.arrays(np.int64, shape, elements=st.integers(-1, n_classes - 1)))
    return labels, n_classes


def test_three_rater_three_way_tie_is_unresolved_by_default():
    labels = np.array([[LESION, NO_SKIN, HEALTHY]])
    out = fuse_quality(labels, C)
    assert out.fused.tolist() == [-1]
    assert out.is_tie.tolist() == [True]
    assert out.tied.tolist() == [[True, True, True, False]]
    assert out.votes.tolist() == [[1, 1, 1, 0]]
    assert out.n_raters.tolist() == [3]
    assert out.resolution.tolist() == [Resolution.UNRESOLVED]


def test_plurality_and_two_two_tie_and_unlabeled():
    labels = np.array(
        [
            [POOR, POOR, LESION],  # plurality
            [HEALTHY, POOR, HEALTHY],  # 2 healthy vs 1 poor
            [-1, -1, -1],  # nobody labeled it
        ]
    )
    out = fuse_quality(labels, C)
    assert out.fused.tolist() == [POOR, HEALTHY, -1]
    assert out.is_tie.tolist() == [False, False, False]
    assert out.resolution.tolist() == [
        Resolution.PLURALITY,
        Resolution.PLURALITY,
        Resolution.UNLABELED,
    ]
    four = fuse_quality(np.array([[HEALTHY, POOR, HEALTHY, POOR]]), C)
    assert four.fused.tolist() == [-1]
    assert four.tied.tolist() == [[False, False, True, True]]


def test_precedence_order_picks_first_tied_class_in_that_order():
    labels = np.array([[LESION, NO_SKIN, HEALTHY], [HEALTHY, POOR, -1], [LESION, LESION, POOR]])
    out = fuse_quality(labels, C, tie_policy=[POOR, HEALTHY, LESION, NO_SKIN])
    assert out.fused.tolist() == [HEALTHY, POOR, LESION]
    assert out.resolution.tolist() == [
        Resolution.PRECEDENCE,
        Resolution.PRECEDENCE,
        Resolution.PLURALITY,
    ]
    assert out.is_tie.tolist() == [True, True, False]  # still reported as ties


def test_partial_precedence_never_breaks_ties_by_sort_order():
    out = fuse_quality(np.array([[LESION, NO_SKIN]]), C, tie_policy=[POOR])
    assert out.fused.tolist() == [-1]
    assert out.resolution.tolist() == [Resolution.UNRESOLVED]


def test_adjudication_overrides_ties_only():
    labels = np.array([[LESION, NO_SKIN], [LESION, LESION], [HEALTHY, POOR]])
    adj = np.array([NO_SKIN, POOR, -1])
    out = fuse_quality(labels, C, tie_policy=[HEALTHY], adjudications=adj)
    assert out.fused.tolist() == [NO_SKIN, LESION, HEALTHY]
    assert out.resolution.tolist() == [
        Resolution.ADJUDICATED,
        Resolution.PLURALITY,  # a stale adjudication on a non-tie is ignored
        Resolution.PRECEDENCE,
    ]
    assert out.plurality.tolist() == [-1, LESION, -1]
    assert out.adjudication_outdated.tolist() == [False, True, False]


def test_stale_adjudication_does_not_decide_a_different_tie():
    # The repro: lesion was adjudicated on an earlier tie; the current labels tie
    # healthy_skin and poor_quality 2-2, and lesion has one vote of five.
    out = fuse_quality(np.array([[0, 2, 3, 2, 3]]), C, adjudications=np.array([LESION]))
    assert out.fused.tolist() == [-1]
    assert out.resolution.tolist() == [Resolution.UNRESOLVED]
    assert out.tied.tolist() == [[False, False, True, True]]
    assert out.adjudication_outdated.tolist() == [True]
    # With a precedence order the outdated image follows the policy, not the old decision.
    prec = fuse_quality(np.array([[0, 2, 3, 2, 3]]), C, tie_policy=[POOR], adjudications=[0])
    assert prec.fused.tolist() == [POOR] and prec.resolution.tolist() == [Resolution.PRECEDENCE]


@given(label_sets(max_classes=4), st.data())
@settings(max_examples=150, deadline=None)
def test_adjudication_applies_only_within_the_current_tie(case, data):
    labels, n_classes = case
    adj = data.draw(hnp.arrays(np.int64, labels.shape[0], elements=st.integers(-1, n_classes - 1)))
    plain = fuse_quality(labels, n_classes)
    out = fuse_quality(labels, n_classes, adjudications=adj)
    for i in range(labels.shape[0]):
        votes = Counter(int(v) for v in labels[i] if v >= 0)
        top = max(votes.values(), default=0)
        tied = sorted(c for c, v in votes.items() if v == top) if len(votes) else []
        applies = adj[i] >= 0 and len(tied) > 1 and int(adj[i]) in tied
        assert out.adjudication_outdated[i] == (adj[i] >= 0 and not applies)
        if applies:
            assert out.fused[i] == adj[i] and out.resolution[i] == Resolution.ADJUDICATED
        else:  # the votes decide, exactly as without any adjudication
            assert out.fused[i] == plain.fused[i]
            assert out.resolution[i] == plain.resolution[i]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tie_policy": "first"},
        {"tie_policy": [0, 0]},
        {"tie_policy": [4]},
        {"adjudications": np.array([5])},
        {"adjudications": np.array([0, 1])},
    ],
)
def test_fuse_quality_rejects_bad_policy(kwargs):
    with pytest.raises(ValueError):
        fuse_quality(np.array([[0, 1]]), C, **kwargs)


def test_fuse_quality_rejects_bad_labels():
    with pytest.raises(ValueError):
        fuse_quality(np.array([[0, 4]]), C)
    with pytest.raises(ValueError):
        fuse_quality(np.array([[0.0, 1.0]]), C)


@settings(max_examples=60, deadline=None)
@given(label_sets(), st.data())
def test_fuse_quality_matches_a_counter(case, data):
    labels, n_classes = case
    order = data.draw(st.permutations(range(n_classes)).map(lambda p: p[: max(1, len(p) - 1)]))
    out = fuse_quality(labels, n_classes, tie_policy=order)
    for i, row in enumerate(labels):
        counts = Counter(int(v) for v in row if v >= 0)
        assert out.votes[i].tolist() == [counts.get(c, 0) for c in range(n_classes)]
        assert out.n_raters[i] == sum(counts.values())
        if not counts:
            assert out.fused[i] == -1 and not out.is_tie[i]
            continue
        top = max(counts.values())
        winners = sorted(c for c, k in counts.items() if k == top)
        assert out.is_tie[i] == (len(winners) > 1)
        if len(winners) == 1:
            assert out.fused[i] == winners[0]
            assert not out.tied[i].any()
        else:
            assert np.flatnonzero(out.tied[i]).tolist() == winners
            first = [c for c in order if c in winners]
            assert out.fused[i] == (first[0] if first else -1)


def test_explanation_relevance_counts_labeled_cells_only():
    expl = np.zeros((2, 3, 2), dtype=bool)
    expl[0, 0, 0] = expl[0, 1, 0] = expl[0, 2, 1] = True
    expl[1, 2, 1] = True  # rater 2 has no label on image 1: ignored
    labels = np.array([[POOR, POOR, POOR], [POOR, LESION, -1]])
    out = explanation_relevance(expl, labels, k=2)
    assert out.counts.tolist() == [[2, 1], [0, 0]]
    assert out.relevant.tolist() == [[True, False], [False, False]]
    assert out.n_raters.tolist() == [3, 2]
    default = explanation_relevance(expl, labels >= 0)
    assert default.relevant.tolist() == [[True, True], [False, False]]
    with pytest.raises(ValueError):
        explanation_relevance(expl, labels, k=0)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_explanation_relevance_matches_loop(data):
    n, r, e = (
        data.draw(st.integers(0, 10)),
        data.draw(st.integers(1, 5)),
        data.draw(st.integers(1, 6)),
    )
    expl = data.draw(hnp.arrays(bool, (n, r, e)))
    labeled = data.draw(hnp.arrays(bool, (n, r)))
    k = data.draw(st.integers(1, 3))
    out = explanation_relevance(expl, labeled, k=k)
    for i in range(n):
        for j in range(e):
            count = sum(bool(expl[i, a, j]) and bool(labeled[i, a]) for a in range(r))
            assert out.counts[i, j] == count
            assert out.relevant[i, j] == (count >= k)


def test_diagnosis_plurality_with_vote_count_and_ties():
    codes = np.array([[12, 12, 40], [40, 12, -1], [-1, -1, -1], [7, 3, 9]])
    out = fuse_diagnoses(codes)
    assert out.code.tolist() == [12, -1, -1, -1]
    assert out.votes.tolist() == [2, 1, 0, 1]
    assert out.is_tie.tolist() == [False, True, False, True]
    assert out.tied.tolist() == [[-1, -1, -1], [12, 40, -1], [-1, -1, -1], [3, 7, 9]]
    assert out.n_voters.tolist() == [3, 2, 0, 3]


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.int64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=st.integers(-1, 6)
    )
)
def test_fuse_diagnoses_matches_a_counter(codes):
    out = fuse_diagnoses(codes)
    for i, row in enumerate(codes):
        counts = Counter(int(v) for v in row if v >= 0)
        top = max(counts.values(), default=0)
        winners = sorted(c for c, k in counts.items() if k == top)
        assert out.votes[i] == top
        assert out.n_voters[i] == sum(counts.values())
        assert out.is_tie[i] == (len(winners) > 1)
        assert out.code[i] == (winners[0] if len(winners) == 1 else -1)
        expected_tied = winners if len(winners) > 1 else []
        assert out.tied[i].tolist() == expected_tied + [-1] * (codes.shape[1] - len(expected_tied))
