"""Issue 22's hostile cases around attacks and the experiment's configuration: each ends in one line and exit code 2
(or, for what must work, in a run), and each failed before its fix."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from segattack.cli import main
from segattack.experiment import read_rows

from .models_for_cli import one_line_error

S = ["--data", "synthetic:1", "--size", "32x64"]


#: A model module that registers attacks when it is imported, as a user's plug-in does: ``--model
#: attack_plugin:model --attack plugin-shift`` must find them (the module is imported before --attack is resolved).
#: ``plugin-too-far`` breaks its budget: the pipeline must refuse its output, naming it. Written into the test's
#: folder (not a module of tests/, which the doctest collection would import and so register its attacks early).
PLUGIN = '''
import segattack as sa
from tests.models_for_cli import tiny_fcn


@sa.attacks.register("plugin-shift", replace=True)
def shift(model, images, labels, *, eps, targeted, mask=None, ignore_index=255):
    """Every pixel down by eps (inside the mask, if given)."""
    delta = -eps if mask is None else -eps * mask[:, None].to(images.dtype)
    return (images + delta).clamp(0, 1)


@sa.attacks.register("plugin-too-far", replace=True)
def too_far(model, images, labels, *, eps, targeted):
    """Half the range away, whatever eps says: a broken attack."""
    return (images + 0.5).clamp(0, 1)


def model():
    return tiny_fcn()
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The plug-in module, importable; its attacks unregistered afterwards (other tests iterate over the registry)."""
    (tmp_path / "attack_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "attack_plugin:model"
    import segattack as sa

    for name in ("plugin-shift", "plugin-too-far"):
        sa.attacks.unregister(name)
    sys.modules.pop("attack_plugin", None)


def run(out: Path, *extra: str) -> list[str]:
    return ["run", *S, "--eps", "2", "--out", str(out), "--figure1", "0", *extra]


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--goal", "untargeted", "--attack", "worst_case", "--attack-opt", "worst_case.attacks=illm"],
         "'illm' is targeted only"),
        (["--attack", "apgd", "--attack-opt", "apgd.steps=0"], "apgd.steps must be at least 1"),
        (["--attack", "worst_case", "--attack-opt", "worst_case.attacks="], "worst_case.attacks lists no attack"),
        (["--attack", "worst_case", "--attack-opt", "worst_case.attacks=apgd:nope"], "unknown loss 'nope'"),
        (["--attack", "pgd", "--attack-opt", "pgd.step_size=nan"], "pgd.step_size"),
        (["--attack", "illm,illm"], "listed twice"),
        (["--attack", "nope"], "unknown attack 'nope'"),
    ],
)  # fmt: skip
def test_attack_options_are_one_line(
    extra: list[str], phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(run(tmp_path / "o", *extra), capsys)
    assert phrase in err, err
    assert not (tmp_path / "o").exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("eps", "phrase"),
    [("1e-9", "at least 0.01 levels"), ("0", "must be positive"), ("300", "exceeds the 8-bit range"),
     ("2,2", "lists a budget twice"), ("nan", "numbers of 8-bit levels"), ("two", "8-bit levels"), (",", "empty")],
)  # fmt: skip
def test_eps_is_checked_once_with_one_policy(
    eps: str, phrase: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["run", *S, "--figure1", "0"], ["demo", "--images", "1", "--size", "32x64"]):
        err = one_line_error([*command, "--eps", eps, "--out", str(tmp_path / "o")], capsys)
        assert phrase in err and "--eps" in err, err
    err = one_line_error(["attack", "nope.png", "--eps", eps, "--out", str(tmp_path / "a.png")], capsys)
    assert phrase in err or "does not exist" in err, err


def test_a_config_json_without_an_experiment_object_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    assert main(run(out)) == 0
    config = json.loads((out / "config.json").read_text())
    config["experiment"] = 5
    (out / "config.json").write_text(json.dumps(config))
    err = one_line_error(run(out), capsys)
    assert "experiment" in err and "--overwrite" in err, err


def test_an_attack_registered_in_the_model_module_can_be_used(plugin: str, tmp_path: Path) -> None:
    out = tmp_path / "plugin"
    assert main(run(out, "--model", plugin, "--attack", "plugin-shift", "--restrict", "both")) == 0
    rows = read_rows(out)
    assert {r["attack"] for r in rows} == {"plugin-shift"} and all(r["linf"] <= 2 for r in rows)


def test_an_attack_s_output_is_checked_and_the_attack_named(
    plugin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "broken"
    capsys.readouterr()
    assert main(run(out, "--model", plugin, "--attack", "plugin-too-far")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("segattack run: error: "), err
    assert "attack 'plugin-too-far' exceeded its budget: L-inf 127.5 levels at eps 2 levels" in err, err
    assert not read_rows(out)  # nothing recorded


def test_fewer_attacks_never_delete_finished_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a"
    assert main(run(out, "--attack", "illm,pgd", "--attack-opt", "pgd.steps=2")) == 0
    both = read_rows(out)
    assert main(run(out, "--attack", "illm")) == 0
    assert read_rows(out) == both  # the pgd rows are kept, nothing is redone
    config = json.loads((out / "config.json").read_text())["experiment"]
    assert [a["name"] for a in config["attacks"]] == ["illm"]
    assert config["kept_attacks"] == [{"name": "pgd", "options": {"steps": 2}}]
    summary = (out / "summary.csv").read_text()
    assert "pgd" not in summary and "illm" in summary  # the report shows the attacks asked for
    capsys.readouterr()
    assert main(run(out, "--attack", "illm,pgd", "--attack-opt", "pgd.steps=2")) == 0
    assert "already done" in capsys.readouterr().err and read_rows(out) == both  # pgd resumed, not redone
