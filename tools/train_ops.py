"""train_ops.py - faster training modules for MobileNetV2-XBN on channels-last tensors,
with the maths of torch's own.

    train_ops.install(model)   # in place; the state_dict keys stay the same

Why: two of torch 1.13's CPU kernels are slow on this network's training shapes (batch
128 at 48x48, measured on the 2 Zen 3 cores of the development machine):
  - the channels-last GroupNorm forward, 2.9 ms a call, 16% of a training step and five
    times its own backward. Here it is a per-channel sum and sum of squares over the
    [N, H*W, C] view (reductions over an outer dimension, which torch vectorises) and one
    multiply-add, with the ReLU6 that follows it done in place; the backward is torch's.
  - the weight gradient of a depthwise convolution whose output is 2x2 or smaller: 10 ms
    for the 480-channel 2x2 ones of the last stage (their forward takes 0.1 ms). Here it
    is nine products of the output gradient with shifted inputs; the input gradient and
    larger maps stay with torch.
The results equal torch's modules within 5e-5 of the largest value (float32 sums in another
order; tests/integration/test_train_ops.py compares outputs and gradients, and the whole
network's gradients with torch in float64). Only training uses these: train_fashion.py copies the
trained state into a model built by xbnmodels.py before it evaluates and writes the file.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class _GroupNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps, relu6):
        n, c, h, w = x.shape
        cg = c // groups
        xr = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view if x is channels-last
        cnt = h * w * cg
        mean = xr.sum(1).view(n, groups, cg).sum(-1) / cnt  # [N, G]
        var = (xr * xr).sum(1).view(n, groups, cg).sum(-1) / cnt - mean * mean
        rstd = (var.clamp_min(0) + eps).rsqrt()
        scale = rstd.repeat_interleave(cg, 1) * weight  # [N, C]
        shift = bias - mean.repeat_interleave(cg, 1) * scale
        y = torch.addcmul(shift.unsqueeze(1), xr, scale.unsqueeze(1))
        if relu6:
            y.clamp_(0, 6)
        y = y.view(n, h, w, c).permute(0, 3, 1, 2)
        ctx.save_for_backward(x, weight, mean, rstd, y if relu6 else None)
        ctx.groups, ctx.relu6 = groups, relu6
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, rstd, y = ctx.saved_tensors
        if ctx.relu6:  # y is in (0, 6) exactly where ReLU6's input was
            g = torch.ops.aten.hardtanh_backward(g, y, 0.0, 6.0)
        n, c, h, w = x.shape
        # torch 1.13's CPU GroupNorm backward reads its tensors as NCHW whatever their
        # strides, hence the copies; the gradient goes back channels-last, the layout the
        # convolutions before it want.
        gx, gw, gb = torch.ops.aten.native_group_norm_backward(
            g.contiguous(), x.contiguous(), mean, rstd, weight, n, c, h * w, ctx.groups,
            [ctx.needs_input_grad[0], True, True])
        if gx is not None:
            gx = gx.contiguous(memory_format=torch.channels_last)
        return gx, gw, gb, None, None, None


class GroupNormReLU6(nn.GroupNorm):
    """nn.GroupNorm, then ReLU6 if relu6, on the same parameters."""

    def __init__(self, gn, relu6):
        super().__init__(gn.num_groups, gn.num_channels, gn.eps)
        self.weight, self.bias, self.relu6 = gn.weight, gn.bias, relu6

    def forward(self, x):
        return _GroupNormFn.apply(x, self.weight, self.bias, self.num_groups, self.eps,
                                  self.relu6)


class _DepthwiseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, pad):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.pad = stride, pad
        return F.conv2d(x, weight, None, stride, pad, 1, x.shape[1])

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.pad
        c = x.shape[1]
        gx = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                g, x, weight, None, [s, s], [p, p], [1, 1], False, [0, 0], c,
                [True, False, False])[0]
        oh, ow = g.shape[2:]
        gh = g.permute(0, 2, 3, 1).contiguous()  # NHWC: sums over outer dimensions
        xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, p, p, p, p))
        gw = torch.empty_like(weight)
        for i in range(3):
            for j in range(3):
                xs = xp[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
                gw[:, 0, i, j] = (gh * xs).sum((0, 1, 2))
        return gx, gw, None, None


class DepthwiseConv(nn.Conv2d):
    """A 3x3 depthwise nn.Conv2d without bias, on the same weight."""

    def __init__(self, conv):
        super().__init__(conv.in_channels, conv.out_channels, 3, conv.stride,
                         conv.padding, groups=conv.groups, bias=False)
        self.weight = conv.weight

    def forward(self, x):
        s, p = self.stride[0], self.padding[0]
        if max(x.shape[2:]) + 2 * p - 3 >= 2 * s:  # an output side above 2
            return super().forward(x)
        return _DepthwiseFn.apply(x, self.weight, s, p)


def install(model):
    """Replace, in every nn.Sequential of model, each GroupNorm (and the ReLU6 right
    after it, which becomes nn.Identity) and each 3x3 depthwise convolution without bias
    by the modules above, and make each ReLU6 after a BatchNorm2d work in place (the
    norm's backward reads its input, not its output): one fresh tensor fewer each."""
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i, mod in enumerate(seq):
            if type(mod) is nn.GroupNorm:
                relu6 = i + 1 < len(seq) and type(seq[i + 1]) is nn.ReLU6
                seq[i] = GroupNormReLU6(mod, relu6)
                if relu6:
                    seq[i + 1] = nn.Identity()
            elif (type(mod) is nn.Conv2d and mod.groups > 1 and mod.groups == mod.in_channels
                  and mod.kernel_size == (3, 3) and mod.bias is None
                  and mod.dilation == (1, 1) and mod.stride[0] == mod.stride[1]
                  and mod.padding[0] == mod.padding[1]):
                seq[i] = DepthwiseConv(mod)
            elif (type(mod) is nn.BatchNorm2d and i + 1 < len(seq)
                  and type(seq[i + 1]) is nn.ReLU6):
                seq[i + 1].inplace = True
    return model
