"""The experiment and the command line with the attack family: rows per attack, resume per attack, the untargeted
goal (accuracy and mIoU under attack), the shared pipeline, the report, and the command line's one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import segattack as sa
from segattack.cli import main
from segattack.experiment import ExperimentConfig, ExperimentError, read_config, read_rows, run_experiment
from segattack.pipeline import AttackSpec, HideGoal, UntargetedGoal, attack_batch, dense_confusion, measure
from segattack.report import summarize_results, write_report
from segattack.report.summary import WORST

from .models_for_cli import ListDataset, street_image, tiny_fcn, write_street_pngs

EPS = [2, 4]
FAST = [AttackSpec("illm"), AttackSpec("pgd", {"steps": 3}), AttackSpec("segpgd", {"steps": 3})]


class LabelledDataset(ListDataset):
    """Street images with a ground truth: the tiny model's own clean prediction with a band set to ignore."""

    has_labels = True

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, _ = super().__getitem__(index)
        label = tiny_fcn().predict(img[None].float() / 255)[0]
        label[:4] = 255
        return img, label


def data(n: int = 3, labelled: bool = False) -> ListDataset:
    images = [street_image(i, person=i != 1) for i in range(n)]
    return LabelledDataset(images) if labelled else ListDataset(images)


def test_rows_per_attack_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    calls = 0

    def stop_after_one(p: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the start, then one image
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(
            tiny_fcn(),
            data(),
            ExperimentConfig(classes=11, eps=EPS, attacks=FAST, batch_size=1),
            out,
            progress=stop_after_one,
        )
    first = read_rows(out)
    assert {r["attack"] for r in first} == {"illm", "pgd", "segpgd"} and {r["index"] for r in first} == {0}
    run_experiment(tiny_fcn(), data(), ExperimentConfig(classes=11, eps=EPS, attacks=FAST, batch_size=1), out)
    rows = read_rows(out)
    assert len(rows) == 3 * 3 * len(EPS) * 2  # images x attacks x eps x modes
    assert len({(r["index"], r["attack"], r["eps"], r["mode"]) for r in rows}) == len(rows)
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["index"] for r in ok} == {0, 2} and all(r["status"] == "absent" for r in rows if r["index"] == 1)
    for r in ok:
        assert r["linf"] <= r["eps"] + 1e-6 and 0 <= r["fooled"] <= 1
        assert r["steps"] == {"illm": sa.paper_steps(r["eps"]), "pgd": 3, "segpgd": 3}[r["attack"]]
    config = read_config(out)["experiment"]
    assert [a["name"] for a in config["attacks"]] == ["illm", "pgd", "segpgd"] and config["goal"] == "hide"
    # resume per attack: adding one keeps the others' rows; changed options redo that attack only
    before = (out / "results.jsonl").read_text().splitlines()
    more = [FAST[0], AttackSpec("pgd", {"steps": 2}), FAST[2], AttackSpec("cospgd", {"steps": 2})]
    run_experiment(tiny_fcn(), data(), ExperimentConfig(classes=11, eps=EPS, attacks=more, batch_size=2), out)
    after = (out / "results.jsonl").read_text().splitlines()
    kept = [line for line in before if '"attack": "pgd"' not in line]
    assert after[: len(kept)] == kept  # illm and segpgd rows untouched, in place
    rows = read_rows(out)
    assert len(rows) == 3 * 4 * len(EPS) * 2
    assert {r["steps"] for r in rows if r["attack"] == "pgd" and r["status"] == "ok"} == {2}
    assert read_config(out)["experiment"]["attacks"][3] == {"name": "cospgd", "options": {"steps": 2}}
    # anything else that changes is another configuration
    with pytest.raises(ExperimentError, match="different configuration"):
        run_experiment(tiny_fcn(), data(), ExperimentConfig(classes=11, eps=[2], attacks=more), out)


def test_illm_rows_equal_a_single_attack_run(tmp_path: Path) -> None:
    """Adding attacks does not change the paper's rows."""
    run_experiment(tiny_fcn(), data(), ExperimentConfig(classes=11, eps=EPS, attacks=FAST), tmp_path / "a")
    run_experiment(tiny_fcn(), data(), ExperimentConfig(classes=11, eps=EPS), tmp_path / "b")

    def illm_rows(p: Path) -> list[tuple[Any, ...]]:
        return [(r["index"], r["eps"], r["mode"], r["fooled"], r["preserved"], r["linf"])
                for r in read_rows(p) if r["attack"] == "illm" and r["status"] == "ok"]  # fmt: skip

    assert illm_rows(tmp_path / "a") == illm_rows(tmp_path / "b") and illm_rows(tmp_path / "b")


def test_untargeted_goal_measures_against_ground_truth(tmp_path: Path) -> None:
    out = tmp_path / "u"
    specs = [AttackSpec("pgd", {"steps": 4}), AttackSpec("apgd", {"steps": 4})]
    run_experiment(
        tiny_fcn(),
        data(labelled=True),
        ExperimentConfig(goal="untargeted", eps=[2, 16], attacks=specs, batch_size=2),
        out,
    )
    rows = read_rows(out)
    assert len(rows) == 3 * 2 * 2 and {r["mode"] for r in rows} == {"full"}
    assert all(r["status"] == "ok" for r in rows)  # no class is needed: every image is attacked
    assert read_config(out)["experiment"]["reference"] == "truth"
    for r in rows:
        cm = dense_confusion(r["confusion"], 19)
        assert int(cm.sum()) == 32 * 64 - 4 * 64  # the ignored band is not counted
        assert math.isclose(r["accuracy"], float(cm.diag().sum()) / float(cm.sum()))
        assert r["clean_accuracy"] == 1.0  # the ground truth is the clean prediction outside the band
    summary = summarize_results(out)
    by = {(s["attack"], s["eps"]): s for s in summary}
    assert by[("pgd", 16)]["miou"] < by[("pgd", 2)]["clean_miou"] == 1.0
    assert by[("pgd", 16)]["accuracy_mean"] < by[("pgd", 2)]["accuracy_mean"] < 1.0
    worst = by[(WORST, 16)]
    assert worst["accuracy_mean"] <= min(by[("pgd", 16)]["accuracy_mean"], by[("apgd", 16)]["accuracy_mean"]) + 1e-12
    report = write_report(out)
    assert (out / "attacks.png").exists() and not (out / "figure2.png").exists()
    assert any(line.startswith("pgd: eps=2: mIoU") for line in report.sentences)
    page = report.html_path.read_text()
    assert "Robustness under attack" in page and "worst of all" in page


def test_untargeted_without_labels_uses_the_clean_prediction(tmp_path: Path) -> None:
    run_experiment(
        tiny_fcn(),
        data(),
        ExperimentConfig(goal="untargeted", eps=[8], attacks=[AttackSpec("pgd", {"steps": 2})]),
        tmp_path / "p",
    )
    assert read_config(tmp_path / "p")["experiment"]["reference"] == "prediction"
    assert all(r["clean_accuracy"] == 1.0 for r in read_rows(tmp_path / "p"))


def test_experiment_refuses(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="targeted only"):
        run_experiment(tiny_fcn(), data(), ExperimentConfig(goal="untargeted", eps=[2]), tmp_path / "x")
    with pytest.raises(ExperimentError, match="unknown attack 'nope'"):
        run_experiment(tiny_fcn(), data(), ExperimentConfig(classes=11, eps=[2], attacks=["nope"]), tmp_path / "x")
    with pytest.raises(ExperimentError, match="listed twice"):
        run_experiment(tiny_fcn(), data(), ExperimentConfig(classes=11, eps=[2], attacks=["pgd", "pgd"]), tmp_path)
    with pytest.raises(ExperimentError, match="needs classes"):
        run_experiment(tiny_fcn(), data(), ExperimentConfig(eps=[2]), tmp_path / "x")
    with pytest.raises(ExperimentError, match="one mode"):
        ExperimentConfig(goal="untargeted", eps=[2], attacks=["pgd"], modes=("full", "posthoc"))
    with pytest.raises(ExperimentError, match="unknown goal"):
        run_experiment(tiny_fcn(), data(), ExperimentConfig(goal="fool", eps=[2]), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_pipeline_modes_and_measures() -> None:
    model = tiny_fcn()
    x = torch.stack([torch.from_numpy(street_image(i)).permute(2, 0, 1) for i in range(2)]).float() / 255
    goal = HideGoal((11,))
    out = attack_batch(model, x, attack=AttackSpec("illm"), goal=goal, eps=[2 / 255, 8 / 255],
                       modes=("full", "posthoc", "during"))  # fmt: skip
    hidden = out.pred == 11
    assert out.advs["full"].shape == (2, 2, 3, 32, 64) and out.preds["during"].shape == (2, 2, 32, 64)
    for mode in ("posthoc", "during"):  # restricted: nothing changes outside the person pixels
        outside = ~hidden[None, :, None].expand_as(out.advs[mode])
        assert torch.equal(out.advs[mode][outside], x[None].expand_as(out.advs[mode])[outside])
    assert torch.equal(out.advs["full"][1], sa.illm(model, x, out.labels, eps=8 / 255))
    rows = measure(goal, out, "full", 1, num_classes=19)
    assert rows[0]["fooled"] >= measure(goal, out, "full", 0, num_classes=19)[0]["fooled"] - 1e-9
    un = attack_batch(model, x, attack=AttackSpec("pgd", {"steps": 2}), goal=UntargetedGoal(), eps=[8 / 255])
    assert torch.equal(un.labels, un.pred)  # no ground truth: away from the clean prediction
    with pytest.raises(ValueError, match="no class to restrict"):
        attack_batch(model, x, attack=AttackSpec("pgd"), goal=UntargetedGoal(), eps=[8 / 255], modes=("posthoc",))


def _user_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_cli_several_attacks_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pngs = write_street_pngs(tmp_path / "pngs", n=2)
    base = ["run", "--data", f"folder:{pngs}", "--model", "tests.models_for_cli:tiny_fcn", "--eps", "2,4", "--out"]
    out = tmp_path / "r"
    assert main([*base, str(out), "--attack", "illm,pgd", "--attack-opt", "pgd.steps=2",
                 "--attack-opt", "pgd.step_size=1", "--figure1", "1"]) == 0  # fmt: skip
    cfg = read_config(out)["experiment"]
    assert cfg["attacks"][1] == {"name": "pgd", "options": {"steps": 2, "step_size": 1 / 255}}
    assert (out / "attacks.png").exists() and (out / "figure2.png").exists()
    printed = capsys.readouterr().out
    assert "pgd at eps=4:" in printed and "illm at eps=4:" in printed
    for argv, message in [
        ([*base, str(tmp_path / "e"), "--attack", "nope"], "unknown attack 'nope'; available attacks: alma_prox, apgd"),
        ([*base, str(tmp_path / "e"), "--attack", "pgd", "--attack-opt", "pgd.stepz=3"], "has no option 'stepz'"),
        ([*base, str(tmp_path / "e"), "--attack", "pgd", "--attack-opt", "pgd.steps=many"], "takes an integer"),
        ([*base, str(tmp_path / "e"), "--attack", "pgd", "--attack-opt", "pgd.best=maybe"], "true or false"),
        ([*base, str(tmp_path / "e"), "--attack", "pgd", "--attack-opt", "segpgd.steps=3"], "does not run"),
        ([*base, str(tmp_path / "e"), "--attack", "pgd", "--attack-opt", "steps=3"], "NAME.KEY=VALUE"),
        ([*base, str(tmp_path / "e"), "--attack", "apgd", "--attack-opt", "apgd.loss=hinge"], "unknown loss 'hinge'"),
        ([*base, str(tmp_path / "e"), "--goal", "untargeted"], "targeted only"),
        ([*base, str(tmp_path / "e"), "--goal", "untargeted", "--attack", "pgd", "--restrict", "posthoc"],
         "untargeted goal takes --restrict none"),
    ]:  # fmt: skip
        assert message in _user_error(argv, capsys)
    assert not (tmp_path / "e").exists()
    adv = tmp_path / "adv.png"
    one = ["attack", str(pngs / "img_0.png"), "--model", "tests.models_for_cli:tiny_fcn", "--eps", "4"]
    assert main([*one, "--out", str(adv), "--attack", "segpgd", "--attack-opt", "segpgd.steps=2"]) == 0
    assert "segpgd, eps=4 levels (2 gradient passes" in capsys.readouterr().out
    assert "takes one attack" in _user_error([*one, "--out", str(adv), "--attack", "pgd,segpgd"], capsys)
    err = _user_error([*one, "--out", str(adv), "--attack", "dag", "--attack-opt", "dag.stop=2"], capsys)
    assert "stop must be a share" in err
    assert json.loads((out / "config.json").read_text())["experiment"]["goal"] == "hide"
