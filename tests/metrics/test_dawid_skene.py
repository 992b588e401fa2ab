"""Dawid-Skene fusion: against crowd-kit's implementation, on simulated raters, edge cases."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.metrics.dawid_skene import _e_step, _m_step, dawid_skene


def _crowdkit(labels: np.ndarray, n_iter: int):
    from crowdkit.aggregation import DawidSkene

    img, rat = np.nonzero(labels >= 0)
    df = pd.DataFrame({"task": img, "worker": rat, "label": labels[img, rat]})
    with warnings.catch_warnings():  # crowd-kit 1.4 calls pandas APIs that pandas 3 deprecates
        warnings.simplefilter("ignore")
        return DawidSkene(n_iter=n_iter, tol=-np.inf).fit(df)


@st.composite
def panels(draw):
    n = draw(st.integers(5, 40))
    r = draw(st.integers(2, 5))
    c = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, c, n)
    acc = rng.uniform(0.5, 0.95, r)
    noise = rng.integers(0, c, (n, r))
    labels = np.where(rng.random((n, r)) < acc, truth[:, None], noise)
    labels[rng.random((n, r)) < 0.3] = -1
    labels[np.arange(n), rng.integers(0, r, n)] = truth  # every image has a label
    # Every rater uses every class: crowd-kit only knows the classes a rater used, and gives a
    # true class with no evidence a point mass where this module gives it a uniform row.
    for k in range(r):
        labels[(k * c + np.arange(c)) % n, k] = np.arange(c)
    return labels, c


@settings(max_examples=60, deadline=None)
@given(panels(), st.integers(0, 2**31 - 1))
def test_each_em_step_matches_crowdkit(panel, seed):
    from crowdkit.aggregation import DawidSkene

    labels, c = panel
    n, r = labels.shape
    t = np.random.default_rng(seed).dirichlet(np.ones(c), size=n)  # any posteriors
    img, rat = np.nonzero(labels >= 0)
    df = pd.DataFrame({"task": img, "worker": rat, "label": labels[img, rat]})
    probas = pd.DataFrame(t, index=pd.Index(range(n), name="task"), columns=range(c))
    x = np.eye(c)[labels.clip(0)] * (labels >= 0)[:, :, None]
    confusion, prior = _m_step(x.reshape(n, r * c), t, r, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        errors = DawidSkene._m_step(df, probas)
        ref_t = DawidSkene._e_step(df, probas.mean(), errors)
    for (worker, said), row in errors.iterrows():
        np.testing.assert_allclose(confusion[worker, :, said], row.to_numpy(), atol=1e-8)
    np.testing.assert_allclose(prior, t.mean(axis=0), atol=1e-12)
    post, _ = _e_step(x.reshape(n, r * c), confusion, prior)
    np.testing.assert_allclose(post, ref_t.sort_index().reindex(columns=range(c)), atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(panels(), st.integers(1, 3))
def test_whole_fit_matches_crowdkit_without_smoothing(panel, n_iter):
    labels, c = panel
    ours = dawid_skene(labels, c, smoothing=0.0, max_iter=n_iter, tol=0.0)
    ref = _crowdkit(labels, n_iter)
    probas = ref.probas_.sort_index().reindex(columns=range(c)).to_numpy()
    np.testing.assert_allclose(ours.posterior, probas, atol=1e-5)
    np.testing.assert_allclose(ours.prior, ref.priors_.reindex(range(c)).to_numpy(), atol=1e-6)
    # crowd-kit floors every probability at 1e-10 before normalizing; in cells that maximum
    # likelihood drives to zero those floors compound over iterations (1e-10, 1e-9, 1e-7, 1e-3
    # on tiny panels), so the whole fit is compared over a few iterations, to 1e-5, on cells not
    # near 0; the step-by-step test above is the exact (1e-8) check.
    # A true class with (almost) no posterior mass among a rater's images has a row resting on those
    # floors alone (crowd-kit gave 0.07 where this module gives 0 after 3 iterations, on a rater with
    # two labels whose images are both all but certainly of the other class): compared only where the
    # rater's images hold some mass of that class.
    mass = (labels >= 0).T.astype(float) @ ours.posterior  # (rater, true class)
    errors = ref.errors_  # index (worker, said), columns true class
    for (worker, said), row in errors.iterrows():
        ours_row = ours.confusion[worker, :, said]
        ok = (ours_row > 1e-3) & (mass[worker] > 1e-3)
        np.testing.assert_allclose(ours_row[ok], row.reindex(range(c)).to_numpy()[ok], atol=1e-5)


def test_recovers_known_confusion_matrices_of_simulated_raters():
    rng = np.random.default_rng(7)
    n, r, c = 6000, 6, 4
    prior = np.array([0.55, 0.05, 0.18, 0.22])
    truth = rng.choice(c, n, p=prior)
    true_conf = np.empty((r, c, c))
    for k in range(r):
        m = rng.dirichlet(np.full(c, 0.6), size=c) * rng.uniform(0.15, 0.45)
        m[np.arange(c), np.arange(c)] += 1 - m.sum(axis=1)
        true_conf[k] = m
    labels = np.full((n, r), -1)
    for k in range(r):
        cum = true_conf[k][truth].cumsum(axis=1)
        labels[:, k] = (rng.random(n)[:, None] > cum).sum(axis=1)
    labels[rng.random((n, r)) < 0.4] = -1  # raters miss images at random
    labels[labels.max(axis=1) < 0, 0] = truth[labels.max(axis=1) < 0]
    fit = dawid_skene(labels, c)
    assert fit.converged
    # rows of rare true classes rest on few images: tolerance by the images behind each row
    behind = (labels >= 0).T.astype(float) @ np.eye(c)[truth]  # (r, c) images of true class c
    tol = 3.5 * np.sqrt(0.25 / behind)[:, :, None] + 0.01
    assert (np.abs(fit.confusion - true_conf) <= tol).all()
    np.testing.assert_allclose(fit.prior, prior, atol=0.02)
    # as accurate as the Bayes rule that knows the true matrices and prior
    log_joint = np.log(prior)[None, :] + sum(
        np.where(labels[:, [k]] >= 0, np.log(true_conf[k][:, labels[:, k]].T), 0.0)
        for k in range(r)
    )
    oracle = (log_joint.argmax(axis=1) == truth).mean()
    assert (fit.fused == truth).mean() >= oracle - 0.01
    # beats plurality on the same votes (it weighs raters by their estimated reliability)
    votes = np.stack([(labels == k).sum(axis=1) for k in range(c)], axis=1)
    assert (fit.fused == truth).mean() >= (votes.argmax(axis=1) == truth).mean()


def test_hand_computed_unanimous_panel_and_unlabeled_image():
    labels = np.array([[0, 0, 0], [1, 1, 1], [-1, -1, -1], [0, 0, 0], [1, 1, 1]])
    fit = dawid_skene(labels, 2, smoothing=0.0)
    # Perfect agreement: each rater's matrix is the identity, the prior the class shares.
    np.testing.assert_allclose(fit.confusion, np.broadcast_to(np.eye(2), (3, 2, 2)), atol=1e-8)
    np.testing.assert_allclose(fit.prior, [0.5, 0.5])
    assert fit.fused.tolist() == [0, 1, -1, 0, 1]
    assert np.isnan(fit.posterior[2]).all() and np.isnan(fit.confidence[2])
    np.testing.assert_allclose(fit.posterior[[0, 1]], np.eye(2), atol=1e-8)


def test_smoothing_keeps_a_rater_with_one_label_from_a_degenerate_matrix():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 300)
    labels = np.stack([truth, truth, np.where(rng.random(300) < 0.8, truth, 2)], axis=1)
    newcomer = np.full((300, 1), -1)
    newcomer[0, 0] = (truth[0] + 1) % 3  # one label, and it disagrees with the panel
    labels = np.hstack([labels, newcomer])
    fit = dawid_skene(labels, 3, smoothing=2.0, prior_accuracy=0.7)
    assert fit.n_labels[3] == 1
    m = fit.confusion[3]
    # Hand-computed MAP rows: pseudo-counts 1.4 on the diagonal, 0.3 off it, plus the one label
    # (its image's posterior is ~1 on truth[0]): that row is (1.4, 1.3, 0.3) / 3 in some order.
    t0 = truth[0]
    expected = np.array([[1.4, 0.3, 0.3], [0.3, 1.4, 0.3], [0.3, 0.3, 1.4]]) / 2.0
    expected[t0] = np.where(np.arange(3) == t0, 1.4, 0.3) / 3.0
    expected[t0, (t0 + 1) % 3] = 1.3 / 3.0
    np.testing.assert_allclose(m, expected, atol=1e-3)
    assert fit.fused[0] == truth[0]  # one doubtful vote does not overrule two careful ones
    hard = dawid_skene(labels, 3, smoothing=0.0)
    assert hard.confusion[3].max() > 0.99  # what smoothing prevents


def test_with_few_labels_fusion_stays_with_the_clear_majority():
    # 8 images, 3 raters: a uniform prior would make raters uninformative and let the class
    # prevalence decide; the accuracy-centred prior keeps every 2-of-3 and 3-of-3 majority.
    labels = np.array(
        [[0, 0, 0], [1, 1, 3], [2, 2, 2], [0, 1, -1], [3, 3, 3], [0, 0, 3], [2, 2, 2], [0, 0, 0]]
    )
    fit = dawid_skene(labels, 4)
    majority = [0, 1, 2, None, 3, 0, 2, 0]
    for i, want in enumerate(majority):
        if want is not None:
            assert fit.fused[i] == want, i


def test_bad_arguments():
    with pytest.raises(ValueError):
        dawid_skene(np.array([[0, 5]]), 3)
    with pytest.raises(ValueError):
        dawid_skene(np.array([[0, 1]]), 2, smoothing=-1)
    with pytest.raises(ValueError):
        dawid_skene(np.array([[0, 1]]), 2, max_iter=0)
    with pytest.raises(ValueError):
        dawid_skene(np.array([[0, 1]]), 2, prior_accuracy=1.0)
