"""Attacks: pure functions from (model, images, target) to adversarial images."""

from .illm import SweepPlan, illm, illm_sweep, paper_steps, restrict, sweep_plan

__all__ = ["illm", "illm_sweep", "sweep_plan", "SweepPlan", "paper_steps", "restrict"]
