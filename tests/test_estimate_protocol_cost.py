"""benchmarks/estimate_protocol_cost.py: FLOPs scale with the pixels, and the estimate is the passes a run counted
times those FLOPs over the assumed throughput."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "estimate_protocol_cost", ROOT / "benchmarks/estimate_protocol_cost.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_scale_with_the_pixels_and_backward_to_the_input_is_about_a_forward() -> None:
    est = _module()
    small = est.pass_flops("fcn8s", (64, 128), width=1 / 16)
    large = est.pass_flops("fcn8s", (128, 256), width=1 / 16)
    assert small[0] > 0 and large[0] / small[0] == pytest.approx(4, rel=0.15)  # 4x the pixels
    # no weight gradients: a convolution's backward to its input costs what its forward costs (the first layer's
    # input gradient is the one extra), so backward is within 10% of forward
    assert large[1] == pytest.approx(large[0], rel=0.1)


def test_estimate_from_a_runs_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    est = _module()
    summary = {"protocol": "sea", "cost": {"images": 2, "forward": 2000.0, "backward": 1000.0, "seconds_per_image": 1.0,
               "by_evaluation": {"a": {"forward": 2000.0, "backward": 1000.0}}}}  # fmt: skip
    path = tmp_path / "robustness.json"
    path.write_text(json.dumps(summary))
    monkeypatch.setattr(est, "pass_flops", lambda *a, **k: (1e12, 2e12))  # 1 and 2 TFLOP per pass
    monkeypatch.setattr(sys, "argv", ["x", str(path), "--images", "10", "--tflops", "100"])
    est.main()
    out = capsys.readouterr().out
    # per image 1000 forward x 1 TFLOP + 500 backward x 2 TFLOP = 2000 TFLOP; 10 images = 20 PFLOP; at 100 TFLOP/s
    # 200 s = 0.06 h
    assert "20.0 PFLOP" in out and "| 100 | 0.1 |" in out and "| a | 1000 | 500 | 100.0% |" in out
