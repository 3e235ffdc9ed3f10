"""Survival (run_experiment(survive=...), segattack run --survive): the identity equals the plain rows, the measures
after a transform are those computed by hand against model(T(clean)), noise is the same draw on clean and
adversarial images, resume with transform rows (and of results written before rows had one), the report's survival
figure and table, and the user errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import segattack as sa
from segattack.experiment import ExperimentConfig, ExperimentError, Progress, read_rows
from segattack.pipeline import AttackSpec, HideGoal, attack_batch, measure, transformed_outcome
from segattack.report import write_report
from segattack.transforms import Transform

from .models_for_cli import ListDataset, experiment, one_line_error, street_image, tiny_fcn, write_street_pngs

EPS = [2, 4]
SURVIVE = "identity,jpeg:50,blur:1,noise:4"
N_T = 4


def data(n: int = 3) -> ListDataset:
    return ListDataset([street_image(i) for i in range(n)])


def run(out: Path, n: int = 3, **kw: Any) -> list[dict[str, Any]]:
    kw = {"class_ids": 11, "eps_levels": EPS, "batch_size": 2, "figure1_ids": 0, "survive": SURVIVE, **kw}
    experiment(tiny_fcn(), data(n), out, **kw)
    return read_rows(out)


def key(r: dict[str, Any]) -> tuple[Any, ...]:
    return r["index"], r["eps"], r["mode"], r["transform"]


def without_time(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: (None if v != v else v) for k, v in r.items() if k != "time_s"}) for r in rows)


@pytest.fixture(scope="module")
def survived(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("surv") / "run"
    return out, run(out)


def test_rows_and_identity_equals_plain(survived: tuple[Path, list[dict[str, Any]]]) -> None:
    out, rows = survived
    assert len(rows) == 3 * len(EPS) * 2 * (1 + N_T) and len({key(r) for r in rows}) == len(rows)
    assert {r["transform"] for r in rows} == {None, "identity", "jpeg:50", "blur:1", "noise:4"}
    plain = {key(r)[:3]: r for r in rows if r["transform"] is None}
    fields = ("fooled", "preserved", "target_hit", "class_pixels", "instances", "instances_hidden", "linf", "l2",
              "psnr", "ssim", "status", "steps")  # fmt: skip
    for r in rows:
        if r["transform"] == "identity":
            p = plain[key(r)[:3]]
            assert all(r[f] == p[f] for f in fields), [f for f in fields if r[f] != p[f]]
    assert read_config_survive(out) == ["identity", "jpeg:50", "blur:1", "noise:4"]


def read_config_survive(out: Path) -> list[str]:
    return json.loads((out / "config.json").read_text())["experiment"]["survive"]


def test_measures_after_a_transform_by_hand(survived: tuple[Path, list[dict[str, Any]]]) -> None:
    """A jpeg:50 row: hidden and kept of model(T(adv)) against model(T(clean)), computed here from the library."""
    _, rows = survived
    model = tiny_fcn()
    x = torch.from_numpy(street_image(1)).permute(2, 0, 1)[None].float() / 255
    pred = model.predict(x)
    target = sa.hide_class_target(pred, class_id=11)
    t = Transform("jpeg", 50)
    clean_t = t(x)
    pred_t = model.predict(clean_t)
    for e in EPS:
        adv = sa.illm(model, x, target, eps=e / 255)
        m = sa.hiding_metrics(pred_t, model.predict(t(adv)), class_id=11)
        row = next(r for r in rows if key(r) == (1, e, "full", "jpeg:50"))
        assert row["fooled"] == pytest.approx(float(m.fooled[0]), abs=1e-12)
        assert row["preserved"] == pytest.approx(float(m.preserved[0]), abs=1e-12)
        assert row["class_pixels"] == int((pred_t == 11).sum())
        assert row["psnr"] == pytest.approx(float(sa.psnr(t(adv), clean_t)[0]), abs=1e-3)


def test_noise_is_the_same_draw_for_clean_and_adversarial() -> None:
    """With no perturbation at all, T(adv) == T(clean) only if both got the same noise: nothing hidden, all kept."""
    model = tiny_fcn()
    x = torch.stack([torch.from_numpy(street_image(i)).permute(2, 0, 1) for i in range(2)]).float() / 255
    goal = HideGoal((11,))
    outcome = attack_batch(model, x, attack=AttackSpec("illm"), goal=goal, eps=[2 / 255])
    outcome.advs["full"] = x[None].clone()  # an "attack" that changed nothing
    outcome.preds["full"] = model.predict(x)[None]
    noise = Transform("noise", 8)
    out, clean_t = transformed_outcome(model, outcome, x, noise, goal=goal, seeds=[5, 6])
    assert torch.equal(out.advs["full"][0], clean_t) and not torch.equal(clean_t, x)
    rows = measure(goal, out, "full", 0, num_classes=19)
    assert [r["fooled"] for r in rows] == [0.0, 0.0] and [r["preserved"] for r in rows] == [1.0, 1.0]
    again, clean_again = transformed_outcome(model, outcome, x, noise, goal=goal, seeds=[5, 7])
    assert torch.equal(clean_again[0], clean_t[0]) and not torch.equal(clean_again[1], clean_t[1])  # per image
    seed0, seed1 = ExperimentConfig(eps=[2], classes=(11,), seed=0), ExperimentConfig(eps=[2], classes=(11,), seed=1)
    assert seed0.transform_seed("img_0", "noise:4") != seed0.transform_seed("img_1", "noise:4")
    assert seed0.transform_seed("img_0", "noise:4") != seed1.transform_seed("img_0", "noise:4")


def test_deterministic_and_resume_with_transform_rows(
    survived: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, fresh = survived
    out = tmp_path / "r"
    seen: list[int] = []

    def stop_after_one(p: Progress) -> None:
        if p.image_id is not None:
            seen.append(p.done)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(out, progress=stop_after_one)
    part = read_rows(out)
    assert 0 < len(part) < len(fresh) and {r["transform"] for r in part} == {None, *SURVIVE.split(",")}
    # a torn last line of a survival row: its image is redone, nothing duplicated
    text = (out / "results.jsonl").read_bytes()
    (out / "results.jsonl").write_bytes(text[:-40])
    rows = run(out)
    assert without_time(rows) == without_time(fresh)  # same rows as one uninterrupted run (noise included)
    before = (out / "results.jsonl").read_bytes()
    assert without_time(run(out)) == without_time(fresh)  # complete: nothing redone
    assert (out / "results.jsonl").read_bytes() == before


def test_old_results_without_transform_stay_valid(tmp_path: Path) -> None:
    """Rows written before rows had a transform (or ssim, or instances) resume as the plain rows."""
    out = tmp_path / "old"
    run(out, survive=())
    path = out / "results.jsonl"
    new = ("transform", "ssim", "instances")
    old_rows = [
        {k: v for k, v in json.loads(line).items() if not k.startswith(new)}
        for line in path.read_text().split("\n")
        if line
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in old_rows))
    config = json.loads((out / "config.json").read_text())
    for k in ("survive", "instance_threshold", "gt_instances"):
        del config["experiment"][k]
    (out / "config.json").write_text(json.dumps(config))
    before = path.read_bytes()
    rows = run(out, survive=())
    assert path.read_bytes() == before and len(rows) == 3 * len(EPS) * 2  # nothing redone
    write_report(out)  # a report of old rows: no instance counts, no survival
    assert not (out / "survival.png").exists()
    with pytest.raises(ExperimentError, match="different configuration"):
        run(out, survive="jpeg:75")  # the transforms are part of the configuration


def test_report_shows_survival(survived: tuple[Path, list[dict[str, Any]]]) -> None:
    out, rows = survived
    report = write_report(out)
    assert (out / "survival.png").exists() and (out / "survival.csv").exists()
    page = (out / "report.html").read_text()
    assert 'id="survival"' in page and "jpeg:50" in page and "vanish entirely" in page
    assert len(report.summary) == len(EPS) * 2  # summary.csv: the plain rows only
    s = next(r for r in report.summary if r["eps"] == 4 and r["mode"] == "full")
    plain = [r["fooled"] for r in rows if r["eps"] == 4 and r["mode"] == "full" and r["transform"] is None]
    assert s["fooled_mean"] == pytest.approx(sum(plain) / len(plain))
    blocks = {r["transform"] for r in report.survival}
    assert blocks == {"none", "identity", "jpeg:50", "blur:1", "noise:4"}
    ident = next(r for r in report.survival if r["transform"] == "identity" and r["eps"] == 4 and r["mode"] == "full")
    assert ident["fooled_mean"] == s["fooled_mean"] and ident["instances_hidden"] == s["instances_hidden"]
    assert len(report.survival_sentences) == N_T and report.survival_sentences[1].startswith("at eps=4, after jpeg:50")


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExperimentError, match="jpeg quality"):
        run(tmp_path / "a", survive="jpeg:101")
    with pytest.raises(ExperimentError, match="twice"):
        run(tmp_path / "b", survive=["jpeg:75", Transform("jpeg", 75)])
    with pytest.raises(ExperimentError, match="hide goal"):
        ExperimentConfig(goal="untargeted", attacks=["pgd"], eps=[2], survive="blur:1")
    pngs = write_street_pngs(tmp_path / "pngs", n=1)
    base = ["run", "--data", f"folder:{pngs}", "--model", "tests.models_for_cli:tiny_fcn", "--eps", "2", "--out",
            str(tmp_path / "d")]  # fmt: skip
    assert "--survive" in one_line_error([*base, "--survive", "jpeg:75,sharpen:2"], capsys)
    assert "jpeg quality" in one_line_error([*base, "--survive", "jpeg:0"], capsys)
    assert "hide" in one_line_error([*base, "--goal", "untargeted", "--attack", "pgd", "--survive", "blur:1"], capsys)
    assert not (tmp_path / "d").exists()
