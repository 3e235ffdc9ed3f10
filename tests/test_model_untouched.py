"""Attacking a model never changes it: parameters, buffers, train/eval flags, requires_grad flags and .grad stay as
the caller left them, for illm, illm_sweep and PixelModel.predict, whether the model comes wrapped or bare."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import segattack as sa

from .conftest import random_images


class BNDropNet(nn.Module):
    """Conv + BatchNorm + Dropout + a frozen 1x1 head: every piece of state an attack could disturb."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout2d(0.5)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(torch.relu(self.bn(self.conv(x)))))


State = tuple[dict[str, Tensor], dict[str, bool], dict[str, bool], dict[str, Tensor | None]]


def snapshot(net: nn.Module) -> State:
    return (
        {k: v.detach().clone() for k, v in net.state_dict(keep_vars=True).items()},
        {name: m.training for name, m in net.named_modules()},
        {name: p.requires_grad for name, p in net.named_parameters()},
        {name: None if p.grad is None else p.grad.clone() for name, p in net.named_parameters()},
    )


def assert_same(before: State, after: State) -> None:
    sd0, modes0, flags0, grads0 = before
    sd1, modes1, flags1, grads1 = after
    assert sd0.keys() == sd1.keys()
    for k in sd0:
        assert torch.equal(sd0[k], sd1[k]), f"{k} changed"
    assert modes0 == modes1, "train/eval flags changed"
    assert flags0 == flags1, "requires_grad flags changed"
    for k in grads0:
        g0, g1 = grads0[k], grads1[k]
        assert (g0 is None and g1 is None) or (g0 is not None and g1 is not None and torch.equal(g0, g1)), k


def make_net() -> BNDropNet:
    torch.manual_seed(0)
    net = BNDropNet()
    assert net.bn.running_mean is not None and net.bn.running_var is not None
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 2.0)
    net.train()  # the caller's choice: the attack must run in eval mode and give the model back in train mode
    net.head.requires_grad_(False)  # some parameters frozen, some not
    net.bn.weight.grad = torch.full_like(net.bn.weight, 0.25)  # a gradient the caller accumulated
    return net


def test_the_check_can_fail() -> None:
    """A plain train-mode forward does change this model (BN statistics), so the tests below are not vacuous."""
    net = make_net()
    before = snapshot(net)
    net(random_images(2, 8, 8, dtype=torch.float32))
    with pytest.raises(AssertionError, match="running_mean changed"):
        assert_same(before, snapshot(net))


ATTACKS: dict[str, Callable[[nn.Module | sa.PixelModel, Tensor, Tensor], object]] = {
    "illm": lambda m, x, t: sa.illm(m, x, t, eps=3 / 255),
    "illm_masked": lambda m, x, t: sa.illm(m, x, t, eps=torch.tensor([2 / 255, 3 / 255]), mask=t == 0),
    "illm_sweep": lambda m, x, t: sa.illm_sweep(m, x, t, eps=[1 / 255, 3 / 255]),
    "predict": lambda m, x, t: (m if isinstance(m, sa.PixelModel) else sa.PixelModel(m)).predict(x, batch_size=1),
}


@pytest.mark.parametrize("wrapped", [True, False], ids=["PixelModel", "bare"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_leaves_model_untouched(name: str, wrapped: bool) -> None:
    net = make_net()
    model: nn.Module = sa.PixelModel(net, mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2)) if wrapped else net
    x = random_images(2, 10, 12, dtype=torch.float32)
    target = torch.randint(0, 4, (2, 10, 12), generator=torch.Generator().manual_seed(1))
    before = snapshot(net)
    wrapper_mode = model.training
    ATTACKS[name](model, x, target)
    assert_same(before, snapshot(net))
    assert model.training == wrapper_mode


def test_runs_in_eval_mode_even_when_the_model_is_in_train_mode() -> None:
    """Dropout off, BN on running statistics: two calls agree and equal the network in eval mode."""
    net = make_net()
    model = sa.PixelModel(net)
    x = random_images(2, 10, 12, dtype=torch.float32)
    first, second = model(x), model(x)
    assert torch.equal(first, second)
    net.eval()
    with torch.no_grad():
        ref = net(x)
    net.train()
    assert torch.equal(first.detach(), ref)


def test_gradient_reaches_images_not_parameters() -> None:
    net = make_net()
    model = sa.PixelModel(net)
    before = snapshot(net)
    x = random_images(1, 8, 8, dtype=torch.float32).requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    assert_same(before, snapshot(net))  # no parameter gradient accumulated, frozen flags restored
