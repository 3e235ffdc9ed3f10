"""Figure 1's panels for any model: class names and colours from the file, a legend below the grid that overlaps
nothing for any number of classes, and the reason an image was chosen in the title."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from segattack.data.labels import CLASS_COLORS, CLASS_NAMES
from segattack.report import figure1, panels_figure
from segattack.report.figures import _crowded, label_colors

PERSON = 11


def panel_data(
    n_classes: int, names: list[str] | None = None, h: int = 48, w: int = 96, hide: int = PERSON
) -> dict[str, Any]:
    """Figure 1 arrays whose predictions hold ``n_classes`` classes (vertical stripes), ``hide`` among them."""
    ids = list(range(n_classes)) if n_classes > hide else [*range(n_classes - 1), hide]
    stripes = np.array(ids)[np.arange(w) * len(ids) // w]
    pred = np.broadcast_to(stripes, (h, w)).astype(np.uint8).copy()
    pred_adv = np.where(pred == hide, ids[0], pred).astype(np.uint8)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    adv = np.clip(image.astype(int) + rng.integers(-4, 5, image.shape), 0, 255).astype(np.uint8)
    data: dict[str, Any] = {
        "image": image, "adv": adv, "adv_restricted": adv, "target": pred_adv, "pred": pred, "pred_adv": pred_adv,
        "pred_restricted": pred, "class_ids": np.array([hide]), "eps": np.array(10.0), "image_id": "img_7",
        "attack": np.array("illm"), "reason": np.array("median hidden share: 87.3% (image 2 of 3 with >= 21 person "
                                                       "pixels, lowest first)"),
    }  # fmt: skip
    if names is not None:
        data["label_names"] = np.array(names, dtype=str)
    return data


def names_for(n: int) -> list[str]:
    """Cityscapes names first, then void, then classes of other data sets (long names too)."""
    extra = ["void", "cat", "a rather long class name for a legend", *[f"class {k}" for k in range(n)]]
    return [*CLASS_NAMES, *extra][:n]


def boxes(fig: Figure) -> tuple[Bbox, list[Bbox], list[Bbox]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    (legend,) = fig.legends
    axes = [ax.get_window_extent(renderer) for ax in fig.axes]
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    titles.append(fig._suptitle.get_window_extent(renderer))  # type: ignore[union-attr]
    return legend.get_window_extent(renderer), axes, titles


@pytest.mark.parametrize(
    ("n", "size"), [(3, (48, 96)), (19, (48, 96)), (20, (32, 64)), (40, (48, 96)), (40, (40, 200))]
)
def test_the_legend_overlaps_nothing_and_fits_the_figure(n: int, size: tuple[int, int], tmp_path: Path) -> None:
    data = panel_data(n, names_for(n) if n > 19 else None, *size)
    fig = panels_figure(data)
    legend, axes, titles = boxes(fig)
    for box in axes + titles:
        assert not legend.overlaps(box), (legend, box)
    assert not _crowded(fig, fig.canvas.get_renderer())  # type: ignore[attr-defined]  # no title runs into a panel
    whole = fig.bbox
    assert whole.x0 <= legend.x0 and legend.x1 <= whole.x1 and whole.y0 <= legend.y0 and legend.y1 <= whole.y1
    (leg,) = fig.legends
    labels = [t.get_text() for t in leg.get_texts()]
    assert len(labels) == n + 2  # every class present, and the two difference markers
    if n >= 20:
        assert labels[19] == "void" and ("cat" in labels) == (n > 20)
    with open(tmp_path / f"panels_{n}.png", "wb") as fh:  # drawn without error at the report's settings
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")


def test_names_colours_and_reason_come_from_the_file(tmp_path: Path) -> None:
    names = ["background", "person", "Unlabeled", "dog"]
    data = panel_data(3, names, hide=1)
    np.savez_compressed(tmp_path / "figure1_x.npz", **data)
    fig = panels_figure(data)
    (leg,) = fig.legends
    labels = [t.get_text() for t in leg.get_texts()]
    assert labels[:3] == ["background", "person", "void"]  # ids 0, 1, 2 present; 2 is a void class
    title = fig._suptitle.get_text()  # type: ignore[union-attr]
    assert "hiding person at eps = 10" in title and "median hidden share: 87.3%" in title
    colors = label_colors(names)
    assert colors[1].tolist() == list(CLASS_COLORS[PERSON]) and colors[2].tolist() == [0, 0, 0]
    assert colors[0].tolist() != [0, 0, 0] and len({tuple(c) for c in colors.tolist()}) == 4
    assert figure1(tmp_path / "figure1_x.npz").is_file()


def test_colours_are_fixed_and_distinct() -> None:
    names = [f"class {k}" for k in range(60)]
    a, b = label_colors(names), label_colors(names)
    assert np.array_equal(a, b)
    assert len({tuple(c) for c in a.tolist()}) == 60  # tab20, then hashed
    assert label_colors(["Traffic_Light", "IGNORE", "unlabelled"]).tolist() == [list(CLASS_COLORS[6]), [0] * 3, [0] * 3]


def test_files_without_label_names_and_ids_beyond_19(tmp_path: Path) -> None:
    """Files written before label names were recorded: Cityscapes names, plain indices beyond, 255 black."""
    data = panel_data(21)
    data["target"] = data["target"].copy()
    data["target"][0, 0] = 255
    fig = panels_figure(data)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:19] == list(CLASS_NAMES) and labels[19:21] == ["19", "20"] and "255" not in labels
    data.pop("reason")
    assert "\n" not in panels_figure(data)._suptitle.get_text()  # type: ignore[union-attr]
