"""tools/train_ops.py against torch's own modules (outputs, input and parameter gradients),
and the whole MobileNetV2-XBN's gradients against torch in float64 (no xbnserve needed)."""

import copy
import os
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import train_ops  # noqa: E402
import xbnmodels as xm  # noqa: E402

torch.set_num_threads(2)


def run(mod, x, gy):
    x = x.detach().clone().requires_grad_()
    y = mod(x)
    y.backward(gy)
    return y, x.grad, [p.grad for p in mod.parameters()]


def close(a, b, tol):
    """Equal to tol relative to the larger magnitude (float32 sums in another order)."""
    scale = max(1.0, float(a.abs().max()))
    assert float((a - b).abs().max()) <= tol * scale


def compare(ref, shape, tol=5e-5):
    fast = train_ops.install(copy.deepcopy(ref))
    # mean 1, std 3: a mean away from 0 tests the variance's cancellation too
    x = (torch.randn(shape) * 3 + 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out_shape = copy.deepcopy(ref)(x).shape
    gy = torch.randn(out_shape).contiguous(memory_format=torch.channels_last)
    y0, gx0, gp0 = run(ref, x, gy)
    y1, gx1, gp1 = run(fast, x, gy)
    close(y0, y1, tol)
    assert y1.is_contiguous(memory_format=torch.channels_last)
    close(gx0, gx1, tol)
    assert gx1.is_contiguous(memory_format=torch.channels_last)
    assert len(gp0) == len(gp1)
    for a, b in zip(gp0, gp1):
        close(a, b, tol)
    assert fast.state_dict().keys() == ref.state_dict().keys()
    return fast, y1


@pytest.mark.parametrize("relu6", [True, False])
@pytest.mark.parametrize("shape", [(4, 64, 24, 24), (3, 96, 6, 6), (2, 16, 12, 12)])
def test_group_norm(shape, relu6):
    torch.manual_seed(1)
    c = shape[1]
    gn = nn.GroupNorm(min(32, c), c)
    with torch.no_grad():
        gn.weight.normal_(0, 4)  # wide enough that ReLU6 clips at both ends
        gn.bias.normal_()
    ref = nn.Sequential(gn, nn.ReLU6()) if relu6 else nn.Sequential(gn)
    fast, y = compare(ref, shape)
    assert type(fast[0]) is train_ops.GroupNormReLU6 and fast[0].relu6 == relu6
    if relu6:
        assert type(fast[1]) is nn.Identity
        assert float(y.min()) == 0.0 and float(y.max()) == 6.0


@pytest.mark.parametrize("c,size,stride", [
    (480, 2, 1), (288, 3, 2), (16, 1, 1),   # 2x2 or smaller out: train_ops' weight gradient
    (96, 6, 1), (32, 12, 2)])               # larger: torch's
def test_depthwise(c, size, stride):
    torch.manual_seed(2)
    ref = nn.Sequential(nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False))
    fast, _ = compare(ref, (5, c, size, size))
    assert type(fast[0]) is train_ops.DepthwiseConv


def test_batch_norm_relu6_in_place():
    torch.manual_seed(3)
    ref = nn.Sequential(nn.BatchNorm2d(24), nn.ReLU6())
    fast, _ = compare(ref, (4, 24, 6, 6))
    assert type(fast[0]) is nn.BatchNorm2d and fast[1].inplace
    for k in ("running_mean", "running_var"):
        close(ref.state_dict()["0." + k], fast.state_dict()["0." + k], 1e-6)


def test_network_gradients_against_float64():
    """The shipped network's loss and every parameter gradient on one batch, with the
    modules in float32 against torch's plain modules in float64 (the oracle; torch's own
    float32 modules miss it by more: up to 0.4 of a gradient's largest entry on this
    batch). The state loads into a plain model with strict key checking."""
    torch.manual_seed(0)
    plain = xm.build_model("mobilenetv2", "torch", 0.5, 10)
    fast = train_ops.install(copy.deepcopy(plain).to(memory_format=torch.channels_last))
    kinds = [type(m).__name__ for m in fast.modules()]
    # every GroupNorm, every depthwise convolution (17 each), every BN's ReLU6 (18)
    assert kinds.count("GroupNormReLU6") == 17 and kinds.count("DepthwiseConv") == 17
    assert sum(type(m) is nn.ReLU6 and m.inplace for m in fast.modules()) == 18
    x = torch.randn(8, 3, 48, 48)
    y = torch.randint(0, 10, (8,))
    oracle = copy.deepcopy(plain).double()
    loss64 = F.cross_entropy(oracle(x.double()), y)
    loss64.backward()
    loss = F.cross_entropy(fast(x.contiguous(memory_format=torch.channels_last)), y)
    loss.backward()
    assert abs(float(loss) - float(loss64)) <= 1e-5
    errs = sorted(float((a.grad.double() - b.grad).abs().max()) /
                  max(float(b.grad.abs().max()), 1e-3)
                  for a, b in zip(fast.parameters(), oracle.parameters()))
    assert errs[-1] <= 5e-3 and errs[len(errs) // 2] <= 1e-4, errs[-5:]
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(p.grad, alpha=-0.1)
    plain.load_state_dict(fast.state_dict(), strict=True)
    for a, b in zip(plain.parameters(), fast.parameters()):
        assert torch.equal(a, b)
