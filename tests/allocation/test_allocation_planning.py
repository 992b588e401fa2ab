"""The pure dealing rules (docs/domain.md section 2), checked on plans without a database."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeler.allocation.planning import plan_allocation
from labeler.errors import ValidationError


def images_with_cases(singles: int, case_sizes: list[int], start: int = 1) -> dict[int, str | None]:
    images: dict[int, str | None] = {}
    next_id = start
    for _ in range(singles):
        images[next_id] = None
        next_id += 1
    for c, size in enumerate(case_sizes):
        for _ in range(size):
            images[next_id] = f"case-{c}"
            next_id += 1
    return images


def check_invariants(plan, images, raters, overlap, *, golden_size=None):
    golden = set(plan.golden)
    # each non-golden image: exactly r distinct raters
    holders = defaultdict(list)
    for rater, ids in plan.folds.items():
        assert len(ids) == len(set(ids))
        for i in ids:
            holders[i].append(rater)
    non_golden = set(images) - golden
    assert set(holders) == non_golden
    assert all(len(set(h)) == len(h) == overlap for h in holders.values())
    # every rater gets every golden image, and the queue is golden + fold, each once
    for rater in raters:
        queue = plan.queues[rater]
        assert sorted(queue) == sorted(golden | set(plan.folds[rater]))
        assert golden <= set(queue)
    # no case straddles the golden set, and a case's images share the same raters
    cases = defaultdict(set)
    for i, c in images.items():
        if c is not None:
            cases[c].add(i)
    for members in cases.values():
        assert members <= golden or not members & golden
        if not members & golden:
            assert len({tuple(sorted(holders[i])) for i in members}) == 1
    if golden_size is not None:
        assert len(golden) <= golden_size


@pytest.mark.parametrize(
    "n_images, n_raters, overlap, golden",
    [
        (4700, 11, 1, 230),  # the acne seed: 11 even folds, 230 golden
        (500, 12, 3, 40),  # ImageQX-like overlap
        (101, 4, 2, 0),
        (10, 10, 10, 3),  # everyone labels everything
        (7, 3, 1, 7),  # everything golden
    ],
)
def test_counts_overlap_and_balance(n_images, n_raters, overlap, golden):
    images = images_with_cases(n_images, [])
    raters = list(range(100, 100 + n_raters))
    plan = plan_allocation(images, raters, overlap=overlap, seed=7, golden_size=golden)
    check_invariants(plan, images, raters, overlap, golden_size=golden)
    assert len(plan.golden) == golden
    sizes = plan.fold_sizes.values()
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == (n_images - golden) * overlap
    if n_images == 4700:
        assert sorted(set(sizes)) == [406, 407]  # 4470 / 11


def test_cases_stay_together_and_golden_takes_whole_cases():
    images = images_with_cases(300, [3, 2, 5, 4, 2, 2, 3, 6, 2, 3] * 5)
    raters = [1, 2, 3, 4, 5]
    plan = plan_allocation(images, raters, overlap=2, seed=3, golden_size=30)
    check_invariants(plan, images, raters, 2, golden_size=30)
    assert len(plan.golden) == 30  # single images fill up to the exact size
    sizes = plan.fold_sizes.values()
    assert max(sizes) - min(sizes) <= 1  # cases go first, single images even the loads out


def test_only_cases_balance_as_well_as_whole_cases_allow():
    images = images_with_cases(0, [3] * 20)
    plan = plan_allocation(images, [1, 2, 3], overlap=1, seed=1, golden_size=10)
    assert len(plan.golden) == 9  # whole cases only: never more than asked
    check_invariants(plan, images, [1, 2, 3], 1, golden_size=10)
    sizes = plan.fold_sizes.values()
    assert max(sizes) - min(sizes) <= 3


def test_explicit_golden_list_must_not_split_a_case():
    images = images_with_cases(5, [3])  # ids 1-5 single, 6-8 one case
    plan = plan_allocation(images, [1, 2], seed=0, golden_ids=[1, 6, 7, 8])
    assert plan.golden == (1, 6, 7, 8)
    with pytest.raises(ValidationError, match="splits 1 case"):
        plan_allocation(images, [1, 2], seed=0, golden_ids=[1, 6])
    with pytest.raises(ValidationError, match="not in this project"):
        plan_allocation(images, [1, 2], seed=0, golden_ids=[99])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"overlap": 0}, "overlap"),
        ({"overlap": 4}, "overlap"),
        ({"golden_size": 11}, "golden size"),
        ({"golden_size": -1}, "golden size"),
        ({"golden_size": 1, "golden_ids": [1]}, "not both"),
    ],
)
def test_refuses_impossible_inputs(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        plan_allocation(images_with_cases(10, []), [1, 2, 3], seed=0, **kwargs)
    with pytest.raises(ValidationError):
        plan_allocation({}, [1], seed=0)
    with pytest.raises(ValidationError):
        plan_allocation(images_with_cases(3, []), [], seed=0)


def test_same_inputs_and_seed_same_plan_and_rater_order_does_not_matter():
    images = images_with_cases(200, [2, 3, 4])
    a = plan_allocation(images, [5, 3, 9, 1], overlap=2, seed=42, golden_size=20)
    b = plan_allocation(
        dict(reversed(list(images.items()))), [1, 9, 3, 5, 3], overlap=2, seed=42, golden_size=20
    )
    assert a == b
    c = plan_allocation(images, [1, 3, 5, 9], overlap=2, seed=43, golden_size=20)
    assert c.queues != a.queues and c.golden != a.golden


def test_overlap_varies_the_rater_pairs():
    """Random tie-breaks: with r = 2, many different pairs co-label (pairwise agreement needs that)."""
    plan = plan_allocation(images_with_cases(600, []), list(range(6)), overlap=2, seed=5)
    holders = defaultdict(list)
    for rater, ids in plan.folds.items():
        for i in ids:
            holders[i].append(rater)
    pairs = Counter(tuple(sorted(h)) for h in holders.values())
    assert len(pairs) == 15  # all 6 choose 2 pairs occur
    assert min(pairs.values()) >= 10


def test_golden_positions_are_spread_like_the_rest():
    """Golden positions in each queue look uniform: mean near the middle, every part of the queue used."""
    images = images_with_cases(2000, [])
    plan = plan_allocation(images, list(range(10)), overlap=1, seed=2024, golden_size=100)
    golden = set(plan.golden)
    all_rel = []
    for queue in plan.queues.values():
        n = len(queue)
        rel = [pos / (n - 1) for pos, i in enumerate(queue) if i in golden]
        all_rel.extend(rel)
        # 100 golden among ~290: each tenth of the queue holds some golden items
        deciles = Counter(min(int(r * 10), 9) for r in rel)
        assert len(deciles) == 10
        # longest run of consecutive golden items stays short (bunching would make it long)
        run = longest = 0
        for i in queue:
            run = run + 1 if i in golden else 0
            longest = max(longest, run)
        assert longest <= 8
    # uniform on [0, 1]: mean 0.5, sd 1/sqrt(12); 1,000 positions -> standard error ~0.009
    assert abs(statistics.mean(all_rel) - 0.5) < 0.04
    assert abs(statistics.pstdev(all_rel) - (1 / 12) ** 0.5) < 0.03
    # and the chi-square over deciles of all queues together stays well inside the 99.9% bound (27.9, df 9)
    counts = Counter(min(int(r * 10), 9) for r in all_rel)
    expected = len(all_rel) / 10
    assert sum((counts[d] - expected) ** 2 / expected for d in range(10)) < 27.9


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    singles=st.integers(0, 60),
    case_sizes=st.lists(st.integers(1, 4), max_size=12),
    n_raters=st.integers(1, 7),
    data=st.data(),
)
def test_rules_hold_for_any_input(singles, case_sizes, n_raters, data):
    images = images_with_cases(singles, case_sizes)
    if not images:
        return
    overlap = data.draw(st.integers(1, n_raters))
    golden_size = data.draw(st.integers(0, len(images)))
    seed = data.draw(st.integers(0, 2**31 - 1))
    raters = list(range(1, n_raters + 1))
    plan = plan_allocation(images, raters, overlap=overlap, seed=seed, golden_size=golden_size)
    check_invariants(plan, images, raters, overlap, golden_size=golden_size)
    if not case_sizes:  # only single images: exact size and loads within one
        assert len(plan.golden) == golden_size
        sizes = plan.fold_sizes.values()
        assert max(sizes) - min(sizes) <= 1
    assert plan == plan_allocation(
        images, raters, overlap=overlap, seed=seed, golden_size=golden_size
    )
