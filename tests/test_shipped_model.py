"""The shipped default model: present, checksum-verified, as good as its card says, usable end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segattack as sa
from segattack.cli import main
from segattack.data.labels import LABEL_ID_TO_TRAIN_ID
from segattack.evaluation import evaluate
from segattack.robustness import pixel_accuracy_of
from segattack.zoo import DEFAULT_MODEL, ROBUST_MODEL, WEIGHTS_DIR, sha256_file


def card() -> dict:
    return json.loads((WEIGHTS_DIR / f"{DEFAULT_MODEL}.json").read_text())


def test_default_model_is_shipped_and_small() -> None:
    assert DEFAULT_MODEL in sa.zoo.available()
    weights = WEIGHTS_DIR / card()["weights"]
    assert weights.stat().st_size <= 10 * 2**20
    assert sha256_file(weights) == card()["sha256"]
    assert (WEIGHTS_DIR / f"{DEFAULT_MODEL}.md").exists()  # the human-readable model card


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    c = card()
    shutil.copy(WEIGHTS_DIR / f"{DEFAULT_MODEL}.json", tmp_path)
    data = bytearray((WEIGHTS_DIR / c["weights"]).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / c["weights"]).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256|sha256|checksum"):
        sa.zoo.load(DEFAULT_MODEL, weights_dir=tmp_path)


@pytest.mark.parametrize("name", sorted(sa.zoo.available()))
def test_reaches_its_cards_miou_on_the_recorded_val_slice(name: str) -> None:
    """Every shipped model (the default and the architectures compared with it)."""
    info = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    check = info["check"]  # mIoU on a small val slice, recorded when the model was exported
    model = sa.zoo.load(name)
    assert model.net.__class__ is sa.zoo.ARCHITECTURES[info["arch"]]
    data = sa.data.SyntheticStreets(split="val", size=tuple(check["size"]), length=check["images"], seed=0)
    result = evaluate(model, data, num_classes=19, batch_size=4)
    assert result.miou == pytest.approx(check["miou"], abs=0.005)
    assert float(result.iou[11]) == pytest.approx(check["person_iou"], abs=0.01)
    assert result.miou >= info["val"]["miou"] - 0.1  # the slice is not far from the card's full validation
    assert (WEIGHTS_DIR / info["weights"]).stat().st_size <= 10 * 2**20  # at most 10 MB each


def test_robust_model_keeps_its_accuracy_where_the_default_falls() -> None:
    """The adversarially trained model (PGD at eps 4/255) against the default it was fine-tuned from: under the same
    untargeted PGD at 4/255 (same seeds) the default loses most of its pixels, the robust model most of them keeps."""
    card_robust = json.loads((WEIGHTS_DIR / f"{ROBUST_MODEL}.json").read_text())
    assert card_robust["training"]["adversarial"]["eps_levels"] == 4.0
    assert card_robust["training"]["init"] == f"zoo:{DEFAULT_MODEL}"
    data = sa.data.SyntheticStreets(split="val", size=(128, 256), length=2, seed=0)
    images = torch.stack([data[i][0] for i in range(2)]).float() / 255
    truth = torch.stack([torch.as_tensor(data[i][1]) for i in range(2)]).long()
    acc = {}
    for name in (DEFAULT_MODEL, ROBUST_MODEL):
        model = sa.zoo.load(name)
        adv = sa.attacks.pgd(model, images, truth, eps=4 / 255, steps=5, seed=[0, 1])
        acc[name] = (pixel_accuracy_of(model, images, truth), pixel_accuracy_of(model, adv, truth))
    clean_default, adv_default = acc[DEFAULT_MODEL]
    clean_robust, adv_robust = acc[ROBUST_MODEL]
    assert clean_default > 0.8 and clean_robust > 0.8
    assert adv_default < 0.5 * clean_default  # the clean model falls ...
    assert adv_robust > 0.7 * clean_robust  # ... the robust one keeps most of its pixels
    assert adv_robust > adv_default + 0.3


def write_cityscapes_layout(root: Path, n: int = 3, size: tuple[int, int] = (256, 512)) -> None:
    """Synthetic val scenes written in the official Cityscapes layout, labels as labelIds."""
    train_to_label = np.zeros(256, dtype=np.uint8)
    for label_id, train_id in sorted(LABEL_ID_TO_TRAIN_ID.items(), reverse=True):
        if label_id >= 0 and train_id != 255:
            train_to_label[train_id] = label_id
    data = sa.data.SyntheticStreets(split="val", size=size, length=n, seed=0)
    for i in range(n):
        image, label = data[i]
        city = "synthcity"
        for kind in ("leftImg8bit", "gtFine"):
            (root / kind / "val" / city).mkdir(parents=True, exist_ok=True)
        stem = f"{city}_{i:06d}_000019"
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(
            root / "leftImg8bit/val" / city / f"{stem}_leftImg8bit.png"
        )
        ids = train_to_label[label.numpy().astype(np.int64)]
        Image.fromarray(ids).save(root / "gtFine/val" / city / f"{stem}_gtFine_labelIds.png")


def test_run_and_eval_on_cityscapes_layout_with_zoo_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cityscapes"
    write_cityscapes_layout(root)
    out = tmp_path / "run"
    code = main(
        ["run", "--data", f"cityscapes:{root}", "--model", f"zoo:{DEFAULT_MODEL}", "--hide", "person",
         "--eps", "2,4", "--limit", "2", "--figure1", "1", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 2  # images x eps x modes (full, posthoc)
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(0 <= r["fooled"] <= 1 and r["linf"] <= r["eps"] + 1e-6 for r in ok)
    assert (out / "report.html").exists() and (out / "figure2.png").exists()
    capsys.readouterr()
    assert main(["eval", "--data", f"cityscapes:{root}", "--model", f"zoo:{DEFAULT_MODEL}"]) == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "person" in text
