from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import segattack as sa


def brute_force_candidates(pred: np.ndarray, hidden: set[int]) -> list[list[set[int]]]:
    """For every pixel: the set of classes among the nearest non-hidden pixels (exact Euclidean, no wrap)."""
    h, w = pred.shape
    rr, cc = np.mgrid[0:h, 0:w]
    keep = ~np.isin(pred, list(hidden))
    out: list[list[set[int]]] = []
    for r in range(h):
        row = []
        for c in range(w):
            if keep[r, c]:
                row.append({int(pred[r, c])})
                continue
            d2 = (rr - r) ** 2 + (cc - c) ** 2
            d2 = np.where(keep, d2, np.iinfo(np.int64).max)
            row.append(set(pred[d2 == d2.min()].tolist()))
        out.append(row)
    return out


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    seed=st.integers(0, 10_000),
    p_hidden=st.floats(0.0, 0.9),
    two_ids=st.booleans(),
)
def test_matches_brute_force(h: int, w: int, seed: int, p_hidden: float, two_ids: bool) -> None:
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 4, size=(h, w))
    pred[rng.random((h, w)) < p_hidden] = 7
    if two_ids:
        pred[rng.random((h, w)) < 0.2] = 8
    ids = (7, 8) if two_ids else (7,)
    hidden = np.isin(pred, ids)
    if hidden.all():
        with pytest.raises(ValueError, match="entirely"):
            sa.hide_class_target(torch.from_numpy(pred)[None], class_id=ids)
        return
    target = sa.hide_class_target(torch.from_numpy(pred)[None], class_id=ids)[0].numpy()
    cands = brute_force_candidates(pred, set(ids))
    assert not np.isin(target, ids).any()
    for r in range(h):
        for c in range(w):
            assert int(target[r, c]) in cands[r][c], (r, c)
            if not hidden[r, c]:
                assert target[r, c] == pred[r, c]


def test_no_wraparound_at_borders() -> None:
    # hidden pixel at the left border: the nearest other pixel is in the same row, not across the border
    pred = torch.tensor([[[11, 3, 3, 3, 3, 3, 5]]])
    assert sa.hide_class_target(pred, class_id=11).tolist() == [[[3, 3, 3, 3, 3, 3, 5]]]
    pred = torch.tensor([[[5, 3, 3, 3, 3, 3, 11]]])
    assert sa.hide_class_target(pred, class_id=11).tolist() == [[[5, 3, 3, 3, 3, 3, 3]]]


def test_absent_class_and_multiple_images() -> None:
    pred = torch.randint(0, 5, (3, 6, 7))
    pred[1, 2:4, 2:5] = 11
    target = sa.hide_class_target(pred, class_id=11)
    assert torch.equal(target[0], pred[0]) and torch.equal(target[2], pred[2])
    assert not (target[1] == 11).any()
    assert target.dtype == torch.int64 and pred.dtype == torch.int64


def test_all_hidden_raises_naming_image() -> None:
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    pred[1] = 11
    with pytest.raises(ValueError, match="image 1"):
        sa.hide_class_target(pred, class_id=11)


def test_deterministic_and_input_unchanged() -> None:
    pred = torch.randint(0, 3, (2, 32, 32))
    pred[:, 8:20, 10:15] = 11
    copy = pred.clone()
    assert torch.equal(sa.hide_class_target(pred, class_id=11), sa.hide_class_target(pred, class_id=11))
    assert torch.equal(pred, copy)


@pytest.mark.parametrize(
    ("pred", "kwargs", "message"),
    [
        (torch.zeros(4, 4, dtype=torch.long), {"class_id": 1}, "batch axis"),
        (torch.zeros(1, 3, 4, 4), {"class_id": 1}, "argmax"),
        (torch.zeros(1, 4, 4), {"class_id": 1}, "integer class ids"),
        (torch.zeros(1, 4, 4, dtype=torch.long), {"class_id": ()}, "empty"),
        (torch.zeros(1, 4, 4, dtype=torch.long), {"class_id": -1}, "non-negative"),
        (torch.zeros(1, 4, 4, dtype=torch.long), {"class_id": "person"}, "integers"),
    ],
)
def test_validation(pred: torch.Tensor, kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        sa.hide_class_target(pred, **kwargs)


def test_static_target() -> None:
    pred = torch.randint(0, 5, (2, 3, 4))
    assert (sa.static_target(pred, class_id=9) == 9).all()
