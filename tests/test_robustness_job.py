"""The robustness job (``segattack.robustness``, ``segattack robustness``): SEA's greedy worst-case mIoU by hand and
against brute force, the per-image worst case, the sanity checks' logic on constructed numbers, the job on a tiny
model and tiny labelled images (rows, resume, refusals, robustness.json, the page), the command's one-line errors,
and the sea/quick protocols once their attacks are registered."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import segattack as sa
from segattack import rundir
from segattack.attacks import registry
from segattack.cli import main
from segattack.errors import InputError, RunDirError
from segattack.metrics import dense_confusion, mean_iou, worst_case_miou
from segattack.pipeline import AttackSpec
from segattack.robustness import (
    RobustnessConfig,
    RobustnessError,
    RobustnessProgress,
    masking_checks,
    noise_images,
    pixel_accuracy_of,
    run_robustness,
    sanity,
)
from segattack.robustness.protocol import BLACK_BOX_ATTACK, MINIMAL_NORM_ATTACK, SEA_ATTACK
from segattack.robustness.run import read_robustness_rows
from segattack.robustness.summary import summarize_rows

from .models_for_cli import TinyFCN, one_line_error, street_image, tiny_fcn

SIZE = (16, 32)
MODEL = "tests.models_for_cli:tiny_fcn"


pytestmark = pytest.mark.usefixtures("one_thread")


def street_truth(index: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The ground truth of ``street_image(index, size)`` (Cityscapes train ids), the top-left pixel ignored (255)."""
    h, w = size
    lab = np.zeros((h, w), dtype=np.uint8)
    lab[: h // 3] = 10
    lab[h // 3 :, : w // 4] = 8
    top, left = h // 4, w // 3 + 3 * index
    lab[top : top + h // 2, left : left + w // 6] = 11
    lab[0, 0] = 255
    return lab


class Streets(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Tiny street images with ground truth, following ``segattack.data.base``."""

    has_labels = True

    def __init__(self, n: int = 4) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(street_image(i, SIZE)).permute(2, 0, 1).contiguous()
        return img, torch.from_numpy(street_truth(i)).to(torch.int64)

    def image_id(self, i: int) -> str:
        return f"img_{i}"


def custom(**kw: Any) -> RobustnessConfig:
    """A cheap custom protocol: pgd (4 steps) and APGD with JS (3 steps), with the check of iterations."""
    fields: dict[str, Any] = {
        "eps": (2, 8), "protocol": "custom", "batch_size": 2,
        "attacks": (AttackSpec("pgd", {"steps": 4}), AttackSpec("apgd", {"loss": "js", "steps": 3})),
    }  # fmt: skip
    fields.update(kw)
    return RobustnessConfig(**fields)


def without_time(rows: list[dict[str, Any]]) -> list[str]:
    keep = [{k: v for k, v in r.items() if k != "time_s"} for r in rows]
    return sorted(json.dumps(r, sort_keys=True) for r in keep)


def rows_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("robustness") / "run"
    run_robustness(tiny_fcn(), Streets(4), custom(), out, surrogate=sa.PixelModel(TinyFCN(seed=3), mean=(0, 0, 0),
                                                                                   std=(1, 1, 1)))  # fmt: skip
    return out


# -- SEA's greedy worst-case mIoU -----------------------------------------------------------------------------------


def _cm(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64)


def _chosen(cm: torch.Tensor, choice: Any) -> torch.Tensor:
    """The data set's confusion matrix when image i takes attack ``choice[i]``: (L, N, K, K) -> (K, K)."""
    return torch.stack([cm[int(a), i] for i, a in enumerate(choice)]).sum(0)


def test_greedy_worst_case_miou_by_hand() -> None:
    # 2 attacks, 3 images, 2 classes. Per image, attack 1 has the lower accuracy everywhere, but on image 2 it turns
    # a class-1 pixel block into class 0 where attack 0 spreads the error over class 1, which lowers mIoU more.
    cm = torch.zeros(2, 3, 2, 2, dtype=torch.int64)
    cm[0, 0], cm[1, 0] = _cm([4, 0], [0, 4]), _cm([2, 2], [0, 4])  # image 0: attack 1 is worse for both
    cm[0, 1], cm[1, 1] = _cm([4, 0], [0, 4]), _cm([4, 0], [1, 3])  # image 1: attack 1 is worse for both
    cm[0, 2], cm[1, 2] = _cm([0, 4], [0, 4]), _cm([4, 0], [4, 0])  # image 2: accuracy 0.5 both, tie
    w = worst_case_miou(cm)
    by_hand = {}
    for choice in itertools.product(range(2), repeat=3):
        by_hand[choice] = mean_iou(_chosen(cm, choice))
    # every single change from the result raises (or keeps) mIoU: a local minimum; here it is the global one
    assert w.miou == pytest.approx(min(by_hand.values()))
    assert by_hand[tuple(w.choice.tolist())] == pytest.approx(w.miou)
    # image 2's errors land on class 1 with attack 0 (IoU_0 = 0 for that image's share) ...
    assert tuple(w.choice.tolist()) == (1, 1, 0)
    assert w.miou == pytest.approx(mean_iou(_cm([2, 6], [0, 8]) + _cm([4, 0], [1, 3])))
    assert w.miou <= mean_iou(cm[0].sum(0)) and w.miou <= mean_iou(cm[1].sum(0))


@pytest.mark.parametrize("seed", range(12))
def test_greedy_worst_case_never_above_any_single_attack_or_the_accuracy_choice(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n_att, n_img, k = 3, 5, 3
    cm = torch.randint(0, 6, (n_att, n_img, k, k), generator=g)
    cm[..., 2, :] *= seed % 2  # some cases with a class absent from the ground truth
    w = worst_case_miou(cm, seed=seed)
    singles = [mean_iou(cm[a].sum(0)) for a in range(n_att)]
    acc = torch.stack([torch.tensor([float(c.diag().sum()) / max(int(c.sum()), 1) for c in cm[a]])
                       for a in range(n_att)])  # fmt: skip
    by_acc = [max(a for a in range(n_att) if acc[a, i] == acc[:, i].min()) for i in range(n_img)]
    by_acc_miou = mean_iou(_chosen(cm, by_acc))
    assert w.miou <= min(singles) + 1e-12 and w.miou <= by_acc_miou + 1e-12
    assert w.miou <= w.start + 1e-12
    chosen = _chosen(cm, w.choice.tolist())
    assert w.miou == pytest.approx(mean_iou(chosen))
    for i in range(n_img):  # a local minimum: no single image's change lowers mIoU
        for a in range(n_att):
            alt = chosen - cm[int(w.choice[i]), i] + cm[a, i]
            assert mean_iou(alt) >= w.miou - 1e-12
    best = min(mean_iou(_chosen(cm, c)) for c in itertools.product(range(n_att), repeat=n_img))
    assert w.miou >= best - 1e-12


def test_greedy_worst_case_refusals_and_void_class() -> None:
    with pytest.raises(InputError, match=r"\(L, N, K, K\)"):
        worst_case_miou(torch.zeros(2, 3, 3, dtype=torch.int64))
    with pytest.raises(InputError, match="max_rounds"):
        worst_case_miou(torch.zeros(1, 1, 2, 2, dtype=torch.int64), max_rounds=0)
    cm = torch.zeros(1, 1, 3, 3, dtype=torch.int64)
    cm[0, 0] = _cm([3, 0, 1], [0, 2, 0], [0, 0, 0])
    assert worst_case_miou(cm, exclude=[2]).miou == pytest.approx(mean_iou(cm[0, 0], exclude=[2]))


# -- the summary from constructed rows ------------------------------------------------------------------------------


def _record(evaluations: list[dict[str, Any]], images: int, k: int = 2) -> dict[str, Any]:
    return {"eps_levels": [4], "protocol": "custom", "seed": 0, "images": images, "num_classes": k,
            "void_classes": [], "skipped": [], "evaluations": evaluations}  # fmt: skip


def _row(i: int, name: str, eps: float, cm: torch.Tensor, linf: float = 0.0) -> dict[str, Any]:
    total = int(cm.sum())
    return {"index": i, "image_id": f"i{i}", "evaluation": name, "eps": eps, "status": "ok",
            "confusion": sa.metrics.sparse_confusion(cm), "accuracy": float(cm.diag().sum()) / total if total else None,
            "linf": linf, "forward": 1.0, "backward": 1.0, "time_s": 0.5}  # fmt: skip


def test_summary_per_image_worst_case_and_both_worst_mious() -> None:
    evs: list[dict[str, Any]] = [{"name": "a", "kind": "white-box", "attack": "pgd", "options": {}, "eps": [4]},
           {"name": "b", "kind": "white-box", "attack": "pgd", "options": {}, "eps": [4]},
           {"name": "n", "kind": "noise", "attack": None, "options": {}, "eps": [4]}]  # fmt: skip
    clean = _cm([4, 0], [0, 4])
    per = {  # image -> (attack a, attack b)
        0: (_cm([3, 1], [0, 4]), _cm([4, 0], [2, 2])),  # accuracy 7/8 vs 6/8: b is worse
        1: (_cm([2, 2], [0, 4]), _cm([4, 0], [1, 3])),  # 6/8 vs 7/8: a is worse
        2: (_cm([0, 0], [0, 8]), _cm([0, 0], [4, 4])),  # class 0 absent: 8/8 vs 4/8
    }
    rows = []
    for i, (ca, cb) in per.items():
        rows += [_row(i, "clean", 0, clean), _row(i, "a", 4, ca), _row(i, "b", 4, cb), _row(i, "n", 4, clean)]
    rows.append({"index": 3, "image_id": "i3", "evaluation": "clean", "eps": 0, "status": "unreadable"})
    rows.append(_row(4, "clean", 0, clean))  # image 4 unfinished: left out of every figure
    s = summarize_rows(_record(evs, images=5), rows)
    assert s["images"] == {"run": 5, "complete": 3, "unreadable": 1, "partial": 1} and not s["complete"]
    r = s["robust"][0]
    assert r["worst"]["accuracy"] == pytest.approx((6 / 8 + 6 / 8 + 4 / 8) / 3)
    for name in ("a", "b"):
        assert r["by_evaluation"][name]["accuracy"] >= r["worst"]["accuracy"]
        assert r["worst"]["miou"] <= r["by_evaluation"][name]["miou"] + 1e-12
    by_acc = mean_iou(per[0][1] + per[1][0] + per[2][1])
    assert r["worst"]["miou_per_image_accuracy"] == pytest.approx(by_acc)
    assert r["worst"]["miou"] <= by_acc + 1e-12
    assert r["worst"]["attacks"] == ["a", "b"]  # noise is not an attack of the worst case
    assert s["cost"]["forward"] == 3 * 4 + 1 and s["cost"]["by_evaluation"]["a"]["seconds"] == 1.5


def test_minimal_eps_curve_counts_an_image_from_its_norm_on() -> None:
    evs = [{"name": "w", "kind": "white-box", "attack": "pgd", "options": {}, "eps": [4]},
           {"name": "m", "kind": "minimal-norm", "attack": "alma_prox", "options": {}, "eps": [32]}]  # fmt: skip
    clean, broken = _cm([4, 0], [0, 4]), _cm([0, 4], [4, 0])
    rows = []
    for i, norm in enumerate((2.0, 6.0)):
        rows += [_row(i, "clean", 0, clean), _row(i, "w", 4, clean), _row(i, "m", 32, broken, linf=norm)]
    s = summarize_rows(_record(evs, images=2), rows)
    points = {p["eps"]: p for p in s["minimal_eps_curve"]["points"]}
    assert points[0.0]["accuracy"] == 1.0 and points[2.0]["accuracy"] == 0.5 and points[4.0]["accuracy"] == 0.5
    assert points[6.0]["accuracy"] == 0.0 and points[32.0]["images_within"] == 2
    assert s["minimal_eps_curve"]["median_linf"] == 4.0
    check = {c["name"]: c for c in s["checks"]}["minimal-norm curve consistent with the fixed-eps worst case"]
    assert check["status"] == "FAIL"  # within eps 4 one image breaks that the fixed-eps attack did not
    assert check["numbers"]["curve"] == [0.5] and check["numbers"]["worst"] == [1.0]


# -- the sanity checks on constructed numbers -----------------------------------------------------------------------


def test_checks_pass_and_fail_on_constructed_numbers() -> None:
    assert sanity.large_eps_check(0.05, eps=32).status == "PASS"
    assert sanity.large_eps_check(0.051, eps=32).status == "FAIL"
    assert sanity.large_eps_check(math.nan, eps=32).status == "SKIPPED"
    ok = sanity.steps_check(0.40, 0.404, short_steps=25, long_steps=100, eps=4)
    bad = sanity.steps_check(0.40, 0.41, short_steps=25, long_steps=100, eps=4)
    assert ok.status == "PASS" and bad.status == "FAIL" and bad.numbers["long"] == 0.41
    white = {2.0: 0.5, 8.0: 0.1}
    assert sanity.weaker_check("bb", "square", {2.0: 0.6, 8.0: 0.095}, white).status == "PASS"
    failed = sanity.weaker_check("bb", "square", {2.0: 0.6, 8.0: 0.08}, white)
    assert failed.status == "FAIL" and "eps 8" in failed.detail
    assert sanity.weaker_check("bb", "square", {16.0: 0.0}, white).status == "SKIPPED"
    worst = {2.0: 0.6, 8.0: 0.2}
    assert sanity.noise_check(0.9, {2.0: 0.89, 8.0: 0.76}, worst).status == "PASS"  # drops 0.01 and 0.14 <= 0.175
    assert sanity.noise_check(0.9, {2.0: 0.8, 8.0: 0.8}, worst).status == "FAIL"  # 0.1 > max(0.25 * 0.3, 0.01)
    assert sanity.noise_check(0.9, {2.0: 0.895}, {2.0: 0.9}).status == "PASS"  # a robust model: the slack
    assert sanity.curve_check({2.0: 0.59, 8.0: 0.3}, worst).status == "PASS"
    assert sanity.curve_check({2.0: 0.57, 8.0: 0.3}, worst).status == "FAIL"
    assert sanity.curve_check({}, worst).status == "SKIPPED"
    # a curve that never leaves the clean accuracy confirms nothing: skipped with the reason, not a vacuous PASS
    vacuous = sanity.curve_check({2.0: 0.9, 8.0: 0.9}, worst, clean=0.9)
    assert vacuous.status == "SKIPPED" and "uninformative" in vacuous.detail


# -- the job --------------------------------------------------------------------------------------------------------


def test_job_rows_summary_and_page(finished: Path) -> None:
    rows = rows_of(finished)
    config = custom()
    per_image = 1 + sum(len(p.eps) for p in config.plan)
    assert len(rows) == 4 * per_image
    assert {r["evaluation"] for r in rows} == {"clean", "pgd", "apgd:js", "transfer", "large-eps", "pgd@1", "noise"}
    for r in rows:
        assert r["status"] == "ok" and r["linf"] <= max(float(r["eps"]), 0) + 1e-4
        cm = dense_confusion(r["confusion"], 19)
        assert r["accuracy"] == pytest.approx(float(cm.diag().sum()) / int(cm.sum()))
        assert int(cm.sum()) == SIZE[0] * SIZE[1] - 1  # the ignored pixel left out
    pgd = [r for r in rows if r["evaluation"] == "pgd"]
    assert all(r["backward"] == 4 for r in pgd)  # counted: 4 steps, one backward pass each
    s = json.loads((finished / "robustness.json").read_text())
    clean = sa.evaluate(tiny_fcn(), Streets(4), num_classes=19)
    assert s["clean"]["miou"] == pytest.approx(clean.miou) and s["images"]["complete"] == 4 and s["complete"]
    for r in s["robust"]:
        attacks = [v for v in r["by_evaluation"].values() if v["kind"] in ("white-box", "transfer")]
        assert r["worst"]["accuracy"] <= min(v["accuracy"] for v in attacks) + 1e-12
        assert r["worst"]["miou"] <= min(v["miou"] for v in attacks) + 1e-12
        assert r["worst"]["miou"] <= r["worst"]["miou_per_image_accuracy"] + 1e-12
        assert r["worst"]["accuracy"] <= r["white_box"]["accuracy"] + 1e-12
    assert {c["name"] for c in s["checks"]} >= {"accuracy near 0 at a large eps", "noise of the same eps is harmless"}
    assert {c["status"] for c in s["checks"]} <= {"PASS", "FAIL", "SKIPPED"}
    assert s["cost"]["backward"] > 0 and s["evaluations"][0]["name"] == "pgd"
    page = (finished / "report.html").read_text()
    assert page.index('id="headline"') < page.index("Sanity checks") and "worst case" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<link" not in page


def test_resume_after_interrupt_equals_uninterrupted(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    calls = {"n": 0}

    def stop(p: RobustnessProgress) -> None:
        calls["n"] += 1
        if calls["n"] == 6:  # the start, then 4 calls of the first batch: clean, pgd, apgd:js, transfer
            raise KeyboardInterrupt

    surrogate = sa.PixelModel(TinyFCN(seed=3), mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(KeyboardInterrupt):
        run_robustness(tiny_fcn(), Streets(4), custom(), out, surrogate=surrogate, progress=stop)
    before = (out / "results.jsonl").read_bytes()
    assert len(rows_of(out)) == 2 * (1 + 2 + 2 + 2 + 1)  # two images' clean, pgd, apgd:js, transfer rows
    done = run_robustness(tiny_fcn(), Streets(4), custom(), out, surrogate=surrogate)
    assert (out / "results.jsonl").read_bytes().startswith(before)  # finished rows kept as they were
    assert done.resumed == 16 and done.computed == 4 * 11 - 16
    assert without_time(rows_of(out)) == without_time(rows_of(finished))


def test_a_finished_run_runs_no_attack_again(finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    (copy / "robustness.json").unlink()
    monkeypatch.setattr(registry, "sweep_checked", lambda *a, **k: pytest.fail("a finished row was recomputed"))
    surrogate = sa.PixelModel(TinyFCN(seed=3), mean=(0, 0, 0), std=(1, 1, 1))
    done = run_robustness(tiny_fcn(), Streets(4), custom(), copy, surrogate=surrogate)
    assert done.computed == 0 and done.resumed == 44
    assert json.loads((copy / "robustness.json").read_text())["robust"] == done.summary["robust"]


def test_damaged_rows_are_dropped_and_redone(finished: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    lines = (copy / "results.jsonl").read_bytes().splitlines(keepends=True)
    bad = json.loads(lines[5])
    bad["confusion"] = [[0, 99, 1]]  # a class the model does not have
    (copy / "results.jsonl").write_bytes(
        b"".join([*lines[:5], json.dumps(bad).encode() + b"\n", *lines[6:], lines[7], b'{"index": 0, "ev'])
    )  # a duplicate, a torn line
    surrogate = sa.PixelModel(TinyFCN(seed=3), mean=(0, 0, 0), std=(1, 1, 1))
    done = run_robustness(tiny_fcn(), Streets(4), custom(), copy, surrogate=surrogate)
    assert done.computed >= 1
    assert without_time(rows_of(copy)) == without_time(rows_of(finished))


def test_different_configuration_refused_and_overwrite(finished: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    with pytest.raises(RobustnessError, match="different configuration.*--overwrite"):
        run_robustness(tiny_fcn(), Streets(4), custom(eps=(2, 4)), copy)  # other eps, and no surrogate
    (copy / "mine.txt").write_text("keep me")
    done = run_robustness(tiny_fcn(), Streets(2), custom(eps=(4,)), copy, overwrite=True)
    assert (copy / "mine.txt").read_text() == "keep me"
    assert {float(r["eps"]) for r in rows_of(copy)} == {0.0, 4.0, 32.0}
    assert "transfer skipped: no surrogate model (--transfer-from)" in done.summary["notes"]
    assert {c["name"]: c["status"] for c in done.summary["checks"]}["transfer weaker than white-box"] == "SKIPPED"


def test_a_surrogate_given_later_adds_the_transfer_rows_only(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_robustness(tiny_fcn(), Streets(2), custom(eps=(4,)), out)
    assert "transfer" not in {r["evaluation"] for r in rows_of(out)}
    surrogate = sa.PixelModel(TinyFCN(seed=3), mean=(0, 0, 0), std=(1, 1, 1))
    second = run_robustness(tiny_fcn(), Streets(2), custom(eps=(4,)), out, surrogate=surrogate)
    assert second.resumed == first.computed and second.computed == 2  # two images' transfer rows at eps 4
    statuses = {c["name"]: c["status"] for c in second.summary["checks"]}
    assert statuses["transfer weaker than white-box"] in ("PASS", "FAIL")
    with pytest.raises(RobustnessError, match="different configuration.*surrogate"):
        run_robustness(tiny_fcn(), Streets(2), custom(eps=(4,)), out)  # taken away: its rows would be dropped
    other = sa.PixelModel(TinyFCN(seed=4), mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(RobustnessError, match="different configuration.*surrogate_sha256"):
        run_robustness(tiny_fcn(), Streets(2), custom(eps=(4,)), out, surrogate=other)
    assert len(rows_of(out)) == second.resumed + second.computed


def test_directories_of_other_jobs_and_foreign_files_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"experiment": {"goal": "hide"}}))
    with pytest.raises(RunDirError, match="segattack run"):
        run_robustness(tiny_fcn(), Streets(1), custom(), run_dir)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.jsonl").write_text("mine\n")
    with pytest.raises(RunDirError, match="did not write"):
        run_robustness(tiny_fcn(), Streets(1), custom(), foreign, overwrite=True)
    assert (foreign / "results.jsonl").read_text() == "mine\n"
    # once the run-directory layout knows the kind, the job records its files in the manifest
    monkeypatch.setitem(rundir.layout.KINDS, "robustness", "segattack robustness")
    out = tmp_path / "with-manifest"
    run_robustness(tiny_fcn(), Streets(1), custom(eps=(4,)), out)
    manifest = rundir.read_manifest(out)
    assert manifest is not None and manifest["kind"] == "robustness" and "results.jsonl" in manifest["written"]
    with pytest.raises(RunDirError, match="segattack robustness"):
        rundir.check_kind(out, "run")


class BrokenAt(Streets):
    """``Streets`` whose image ``bad`` cannot be read."""

    def __init__(self, n: int, bad: int) -> None:
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i == self.bad:
            raise sa.data.UnreadableImageError(f"image {i} is corrupt")
        return super().__getitem__(i)


def test_an_unreadable_image_gets_one_row_and_is_left_out(tmp_path: Path) -> None:
    done = run_robustness(tiny_fcn(), BrokenAt(3, bad=1), custom(eps=(4,)), tmp_path / "run")
    rows = rows_of(tmp_path / "run")
    bad = [r for r in rows if r["index"] == 1]
    assert len(bad) == 1 and bad[0]["status"] == "unreadable" and "corrupt" in bad[0]["error"]
    s = done.summary
    assert s["images"] == {"run": 3, "complete": 2, "unreadable": 1, "partial": 0} and s["complete"]
    again = run_robustness(tiny_fcn(), BrokenAt(3, bad=1), custom(eps=(4,)), tmp_path / "run")
    assert again.computed == 0  # the unreadable image is not tried again


def test_configuration_refusals_name_the_field() -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"eps": (0, 4)}, "eps", "positive"), ({"protocol": "fast"}, "protocol", "valid protocols"),
        ({"attacks": ("nosuch",)}, "attacks", "unknown attack"), ({"attacks": ("transfer",)}, "attacks", "surrogate"),
        ({"attacks": ()}, "attacks", "needs its attacks"), ({"attacks": ("illm",)}, "attacks", "targeted only"),
        ({"batch_size": 0}, "batch_size", "positive"), ({"limit": 0}, "limit", "positive"),
        ({"seed": 1.5}, "seed", "integer"),
    ]  # fmt: skip
    for change, name, text in cases:
        with pytest.raises(RobustnessError, match=text) as info:
            custom(**change)
        assert info.value.field == name, change
    with pytest.raises(RobustnessError, match="names its own attacks"):
        RobustnessConfig(eps=(4,), protocol="quick", attacks=("pgd",))


def test_config_round_trip_and_no_ground_truth(tmp_path: Path) -> None:
    config = custom()
    again = RobustnessConfig.from_record(json.loads(json.dumps(config.record())), batch_size=3)
    assert again.record() == config.record() and again.batch_size == 3
    unlabelled = Streets(1)
    unlabelled.has_labels = False  # type: ignore[misc]
    with pytest.raises(RobustnessError, match="no ground truth"):
        run_robustness(tiny_fcn(), unlabelled, config, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_masking_checks_still_work_from_the_package() -> None:
    model = tiny_fcn()
    x = torch.stack([Streets(2)[i][0] for i in range(2)]).float() / 255
    truth = torch.stack([Streets(2)[i][1] for i in range(2)])
    checks = masking_checks(model, x, truth, eps=4 / 255, large_eps=32 / 255, steps=(1, 2))
    assert checks.clean == pytest.approx(pixel_accuracy_of(model, x, truth))
    assert float((noise_images(x, eps=4 / 255) - x).abs().max()) <= 4 / 255 + 1e-6


# -- the command ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("streets")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for i in range(3):
        Image.fromarray(street_image(i, SIZE)).save(root / "images" / f"img_{i}.png")
        Image.fromarray(street_truth(i)).save(root / "labels" / f"img_{i}.png")
    return root / "images", root / "labels"


def cli_args(data: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    return ["robustness", "--model", MODEL, "--data", f"folder:{data[0]}", "--labels", str(data[1]), "--eps", "2,8",
            "--protocol", "custom", "--attack", "pgd,apgd:js", "--attack-opt", "pgd.steps=2",
            "--attack-opt", "apgd:js.steps=2", "--batch-size", "2", "--out", str(out), *extra]  # fmt: skip


def test_command_writes_and_prints(
    labelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert main(cli_args(labelled, out, "--transfer-from", MODEL)) == 0
    printed = capsys.readouterr()
    assert {"config.json", "results.jsonl", "robustness.json", "report.html"} <= {p.name for p in out.iterdir()}
    lines = printed.out.strip().splitlines()
    assert lines[0].startswith("clean: mIoU") and lines[1].startswith("eps 2: worst-case mIoU")
    assert any(line.startswith(("PASS", "FAIL")) for line in lines) and "report.html" in printed.err
    s = json.loads((out / "robustness.json").read_text())
    assert s["surrogate"] == MODEL and s["model"] == MODEL and s["evaluations"][1]["options"]["steps"] == 2
    assert main(cli_args(labelled, out, "--transfer-from", MODEL)) == 0  # resumed: nothing left to do
    assert "0 rows computed" in capsys.readouterr().err


def test_command_interrupted_keeps_its_rows_and_the_same_command_resumes(
    labelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from segattack.commands import robustness as command

    assert main(cli_args(labelled, tmp_path / "ref")) == 0
    original = command._Bar.__call__

    def interrupting(self: Any, p: Any) -> None:
        original(self, p)
        if p.done >= 4:  # Ctrl-C once the first batch has rows on disk
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(command._Bar, "__call__", interrupting)
        assert main(cli_args(labelled, tmp_path / "run")) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "run the same command again to resume" in err
    kept = rows_of(tmp_path / "run")
    assert 4 <= len(kept) < len(rows_of(tmp_path / "ref")) and not (tmp_path / "run" / "robustness.json").exists()
    assert main(cli_args(labelled, tmp_path / "run")) == 0
    assert f"{len(kept)} of" in capsys.readouterr().err  # the resumed run says how many rows were done before
    assert without_time(rows_of(tmp_path / "run")) == without_time(rows_of(tmp_path / "ref"))


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (["--protocol", "fastest"], "--protocol: unknown protocol 'fastest'"),
        (["--eps", "0,4"], "--eps must be positive"),
        (["--attack", "pgd,nosuch"], "unknown attack 'nosuch'"),
        (["--attack-opt", "pgd.nosuch=3"], "has no option 'nosuch'"),
        (["--attack-opt", "dag.steps=3"], "which --attack does not list"),
        (["--batch-size", "0"], "--batch-size: batch_size must be a positive integer"),
        (["--transfer-from", "zoo:nope"], "--transfer-from: unknown model 'nope'"),
    ],
)
def test_command_refusals_are_one_line(
    labelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], text: str
) -> None:
    err = one_line_error(cli_args(labelled, tmp_path / "o", *extra), capsys)
    assert text in err, err
    assert not (tmp_path / "o").exists()


def test_command_refuses_attacks_outside_custom_and_data_without_labels(
    labelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(["robustness", "--model", MODEL, "--data", f"folder:{labelled[0]}", "--labels",
                          str(labelled[1]), "--protocol", "quick", "--attack", "pgd", "--out", str(tmp_path / "o")],
                         capsys)  # fmt: skip
    assert "--protocol custom" in err
    err = one_line_error(["robustness", "--model", MODEL, "--data", f"folder:{labelled[0]}", "--protocol", "custom",
                          "--attack", "pgd", "--out", str(tmp_path / "o")], capsys)  # fmt: skip
    assert "no ground truth" in err


@pytest.mark.skipif(
    all(a in registry.available() for a in (SEA_ATTACK, BLACK_BOX_ATTACK, MINIMAL_NORM_ATTACK)),
    reason="every attack of the sea protocol is registered: its end-to-end test runs instead",
)
def test_sea_protocol_refused_in_one_line_while_an_attack_is_not_registered(
    labelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(["robustness", "--model", MODEL, "--data", f"folder:{labelled[0]}", "--labels",
                          str(labelled[1]), "--out", str(tmp_path / "o")], capsys)  # fmt: skip
    assert "--protocol: protocol 'sea', evaluation" in err and "unknown attack" in err


# -- the reference protocols, once their attacks are registered -----------------------------------------------------


def test_quick_protocol_plan() -> None:
    plan = {p.name: p for p in RobustnessConfig(eps=(2, 4, 8), protocol="quick").plan}
    assert plan["apgd:masked-ce"].spec is not None and plan["apgd:masked-ce"].spec.options["steps"] == 50
    assert plan["apgd:masked-ce@12"].eps == (4.0,) and plan["apgd:masked-ce@12"].shorter_of == "apgd:masked-ce"
    assert plan["large-eps"].eps == (32.0,) and plan["noise"].eps == (2.0, 4.0, 8.0)
    assert (BLACK_BOX_ATTACK in plan) == (BLACK_BOX_ATTACK in registry.available())


def _registered(*names: str) -> bool:
    return all(n in registry.available() for n in names)


def _reference_run(protocol: str, tmp_path: Path) -> dict[str, Any]:
    config = RobustnessConfig(eps=(4, 8), protocol=protocol, limit=1, batch_size=1)
    done = run_robustness(tiny_fcn(), Streets(1), config, tmp_path / protocol, surrogate=tiny_fcn())
    s = dict(done.summary)
    statuses = {c["name"]: c["status"] for c in s["checks"]}
    for name in (
        "black-box weaker than white-box",
        "transfer weaker than white-box",
        "minimal-norm curve consistent with the fixed-eps worst case",
        "more iterations never help the model",
    ):
        assert statuses[name] in ("PASS", "FAIL"), (name, s["checks"])  # fmt: skip
    points = s["minimal_eps_curve"]["points"]
    assert [p["eps"] for p in points] == sorted(p["eps"] for p in points)
    assert [p["images_within"] for p in points] == sorted(p["images_within"] for p in points)
    return s


@pytest.mark.slow
@pytest.mark.skipif(not _registered(BLACK_BOX_ATTACK, MINIMAL_NORM_ATTACK),
                    reason="quick's square and alma_prox are not registered yet")  # fmt: skip
def test_quick_protocol_end_to_end(tmp_path: Path) -> None:
    s = _reference_run("quick", tmp_path)
    assert s["robust"][0]["worst"]["attacks"] == ["apgd:masked-ce", "apgd:js", "square", "transfer"]


@pytest.mark.slow
@pytest.mark.skipif(not _registered(SEA_ATTACK, BLACK_BOX_ATTACK, MINIMAL_NORM_ATTACK),
                    reason="sea, square and alma_prox are not all registered yet")  # fmt: skip
def test_sea_protocol_end_to_end(tmp_path: Path) -> None:
    s = _reference_run("sea", tmp_path)
    assert s["robust"][0]["worst"]["attacks"][:3] == ["sea:masked-balanced-ce", "sea:masked-ce", "sea:js"]
    losses = ("sea:masked-balanced-ce", "sea:masked-ce", "sea:js")
    assert s["robust"][0]["worst"]["miou"] <= min(s["robust"][0]["by_evaluation"][n]["miou"] for n in losses) + 1e-12


def test_rows_checked_on_read(finished: Path) -> None:
    record = json.loads((finished / "config.json").read_text())["robustness"]
    keys = {"clean": {0.0}, **{e["name"]: {float(x) for x in e["eps"]} for e in record["evaluations"]}}
    rows, _, dropped = read_robustness_rows(finished / "results.jsonl", keys, 19, images=4)
    assert len(rows) == 44 and not dropped
    rows, _, dropped = read_robustness_rows(finished / "results.jsonl", keys, 19, images=2)
    assert len(rows) == 22 and dropped


def test_curve_figure_draws_the_curve_and_the_fixed_eps_points() -> None:
    from segattack.report.robustness import curve_svg

    points = [{"eps": 0.0, "accuracy": 0.9, "miou": 0.5}, {"eps": 8.0, "accuracy": 0.01, "miou": 0.0}]
    fixed = [{"eps": 4.0, "accuracy": 0.6, "miou": 0.3}, {"eps": 16.0, "accuracy": 0.2, "miou": None}]
    svg = curve_svg(points, fixed=fixed, width=200, height=100)
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 3  # no dot for a missing mIoU
    # eps 16 is the x axis' end (the fixed points widen it): left 44 + (200 - 44 - 12) = 188
    assert 'cx="188.0"' in svg and "accuracy 20.0% at eps 16" in svg
    assert curve_svg([{"eps": 0.0, "accuracy": None}], fixed=fixed) == ""
