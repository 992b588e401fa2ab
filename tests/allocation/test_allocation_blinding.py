"""Blinding: everything a rater receives looks the same for golden and fold items (docs/domain.md section 2)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from helpers import PUBLIC_ID_RE, header_view, shape
from sqlalchemy import select

from labeler.allocation import services
from labeler.allocation.models import ItemStatus, QueueItem
from labeler.allocation.planning import plan_allocation
from labeler.images.models import Image


def url_shape(url: str, public_id: str) -> str:
    return url.replace(public_id, "<id>")


@pytest.fixture()
def allocated(db, team, make_images):
    images = make_images(team.project, 30, store=True)
    raters = team.raters(3)
    services.allocate(db, team.lead, team.project, raters, golden_size=6, overlap=2, seed=31)
    db.commit()
    return team, raters, {im.id: im for im in images}


def observe(client, project_id, item_ids):
    """Everything the rater's client sees for each item: item JSON, image response, the next-item JSON."""
    seen = {}
    for public_id in item_ids:
        item = client.get(f"/api/v1/items/{public_id}")
        image = client.get(item.get_json()["item"]["image_url"])
        image.close()  # only its status and headers are compared: the streamed file is closed now
        seen[public_id] = {"item": item, "image": image}
    return seen


def test_golden_and_fold_items_are_indistinguishable(db, allocated, client_for):
    team, raters, images = allocated
    rater = raters[0]
    items = list(
        db.scalars(
            select(QueueItem).where(QueueItem.rater_id == rater.id).order_by(QueueItem.position)
        )
    )
    kinds = {it.public_id: it.is_golden for it in items}
    assert set(kinds.values()) == {True, False}
    client = client_for(rater)
    seen = observe(client, team.project.id, [it.public_id for it in items])

    by_kind = defaultdict(lambda: defaultdict(set))
    for public_id, obs in seen.items():
        kind = kinds[public_id]
        item_resp, image_resp = obs["item"], obs["image"]
        assert item_resp.status_code == image_resp.status_code == 200
        body = item_resp.get_json()
        by_kind[kind]["item_shape"].add(repr(shape(body)))
        by_kind[kind]["item_url"].add(url_shape(body["item"]["image_url"], public_id))
        by_kind[kind]["id_shape"].add((len(public_id), bool(PUBLIC_ID_RE.fullmatch(public_id))))
        by_kind[kind]["item_headers"].add(header_view(item_resp.headers))
        by_kind[kind]["image_headers"].add(header_view(image_resp.headers))
        by_kind[kind]["image_header_names"].add(
            tuple(sorted(k.lower() for k, _v in image_resp.headers.items()))
        )
        # nothing in the JSON or headers names the image, its file or its hash
        image = images[next(it.image_id for it in items if it.public_id == public_id)]
        text = item_resp.get_data(as_text=True) + repr(image_resp.headers)
        for leak in (
            image.filename,
            image.sha256,
            image.sha256[:16],
            image.display_key,
            "golden",
            "fold",
        ):
            assert leak not in text
        assert "image_id" not in body["item"] and "is_golden" not in body["item"]

    for aspect in (
        "item_shape",
        "item_url",
        "id_shape",
        "item_headers",
        "image_headers",
        "image_header_names",
    ):
        assert by_kind[True][aspect] == by_kind[False][aspect], aspect
        assert len(by_kind[True][aspect]) == 1, aspect  # one shape for every item, golden or not

    headers = seen[items[0].public_id]["image"].headers
    assert headers["Cache-Control"] == "private, no-store"
    assert headers["Content-Type"] == "image/jpeg"
    for validator in ("ETag", "Last-Modified", "Content-Disposition", "Expires", "Age"):
        assert validator not in headers


def test_next_item_json_is_the_same_for_golden_and_fold(db, allocated, client_for):
    team, raters, _ = allocated
    rater = raters[1]
    client = client_for(rater)
    shapes = defaultdict(set)
    items = list(
        db.scalars(
            select(QueueItem).where(QueueItem.rater_id == rater.id).order_by(QueueItem.position)
        )
    )
    for it in items:  # walk the whole queue, labeling as we go
        resp = client.get(f"/api/v1/projects/{team.project.id}/queue/next")
        body = resp.get_json()
        assert body["item"]["id"] == it.public_id and body["item"]["position"] == it.position
        assert body["item"]["total"] == len(items)
        shapes[it.is_golden].add(
            (
                repr(shape(body)),
                url_shape(body["item"]["image_url"], it.public_id),
                header_view(resp.headers),
            )
        )
        it.status = ItemStatus.done
        db.commit()
    assert shapes[True] == shapes[False] and len(shapes[True]) == 1


def test_golden_images_have_unrelated_addresses_for_each_rater(db, allocated):
    team, raters, _ = allocated
    rows = db.execute(
        select(QueueItem.image_id, QueueItem.public_id, QueueItem.rater_id).where(
            QueueItem.project_id == team.project.id, QueueItem.is_golden.is_(True)
        )
    ).all()
    per_image = defaultdict(set)
    for image_id, public_id, _rater in rows:
        per_image[image_id].add(public_id)
        assert str(image_id) != public_id
    assert all(len(ids) == len(raters) for ids in per_image.values())
    # item ids of golden and fold items are drawn the same way: no common prefix or pattern per kind
    all_ids = [
        r.public_id
        for r in db.scalars(select(QueueItem).where(QueueItem.project_id == team.project.id))
    ]
    assert len({p[:4] for p in all_ids}) > len(all_ids) * 0.9


def test_counts_do_not_tell_golden_apart(db, allocated, client_for):
    """Every rater's total is golden + fold; totals differ by at most one across raters."""
    team, raters, _ = allocated
    totals = []
    for rater in raters:
        body = client_for(rater).get(f"/api/v1/projects/{team.project.id}/queue/next").get_json()
        totals.append(body["item"]["total"])
    assert max(totals) - min(totals) <= 1


def ks_statistic(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            i += 1
        else:
            j += 1
        d = max(d, abs(i / len(a) - j / len(b)))
    return d


def test_golden_positions_are_spread_like_fold_positions(db, team, make_images):
    """Relative queue positions of golden vs fold items: same distribution (fixed seed, KS test at 0.1%)."""
    make_images(team.project, 400)
    raters = team.raters(4)
    services.allocate(db, team.lead, team.project, raters, golden_size=40, overlap=1, seed=2024)
    rows = db.execute(
        select(QueueItem.rater_id, QueueItem.position, QueueItem.is_golden).where(
            QueueItem.project_id == team.project.id
        )
    ).all()
    total = defaultdict(int)
    for r in rows:
        total[r.rater_id] += 1
    golden = [(r.position - 1) / (total[r.rater_id] - 1) for r in rows if r.is_golden]
    fold = [(r.position - 1) / (total[r.rater_id] - 1) for r in rows if not r.is_golden]
    n, m = len(golden), len(fold)
    assert (n, m) == (160, 360)
    assert ks_statistic(golden, fold) < 1.95 * ((n + m) / (n * m)) ** 0.5
    assert abs(sum(golden) / n - sum(fold) / m) < 0.08
    # golden items are not bunched: the first golden item in each queue comes early
    for rater in raters:
        first = min(r.position for r in rows if r.rater_id == rater.id and r.is_golden)
        assert first <= 15  # 40 golden among 130 items


def test_database_queues_follow_the_plan(db, team, make_images):
    """The stored queues are exactly the pure plan: the spread checks on plans apply to the database."""
    made = make_images(team.project, 50, cases={"x": 3})
    raters = team.raters(3)
    services.allocate(db, team.lead, team.project, raters, golden_size=5, overlap=2, seed=77)
    plan = plan_allocation(
        {im.id: im.case_id for im in made},
        [r.id for r in raters],
        overlap=2,
        seed=77,
        golden_size=5,
    )
    stored = defaultdict(list)
    for it in db.scalars(
        select(QueueItem)
        .where(QueueItem.project_id == team.project.id)
        .order_by(QueueItem.position)
    ):
        stored[it.rater_id].append(it.image_id)
    assert {k: tuple(v) for k, v in stored.items()} == plan.queues
    assert set(plan.golden) == set(db.scalars(select(Image.id).where(Image.id.in_(plan.golden))))
