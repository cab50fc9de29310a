"""xbnmodels.py - reference PyTorch implementations of the four xbnserve networks.

These modules are the test ORACLE for the C engine: they are written from the
specification (../shared/docs/models.md, the Keras seed code, docs/model-format.md),
never from the C code. state_dict() (minus num_batches_tracked) yields exactly the
tensor names and shapes of docs/model-format.md.

    build_model(arch, flavour, width=1.0, classes=1000, gn_groups=None) -> nn.Module

arch in {"resnet50", "mobilenetv2"}, flavour in {"torch", "keras"}:

  resnet50/torch      official XBNBlock-P2: stride on the 3x3, no conv bias, GN stem
  resnet50/keras      the seed's Resnet50: stride on the first 1x1, every conv has a bias,
                      BN stem (eps 1.001e-5), zero-pad + maxpool, GN(32) after the 3x3
  mobilenetv2/torch   official MobileNetV2_XBNBlock (tonylins layout): width_mult,
                      ceil-to-8 only for t > 1, first conv always 32, no expansion conv
                      for t = 1, linear projection, BN eps 1e-5, GN(16) after depthwise
  mobilenetv2/keras   the seed's MobilenetV2_xbn: alpha, _make_divisible, TF "same"
                      padding for stride 2 (correct_pad), expansion conv always present,
                      ReLU6 after the projection BN, BN eps 1e-3, 1x1 conv_preds = dense

All networks take float32/float64 NCHW input and return pre-softmax logits [N, classes].
Eager mode only.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("resnet50", "mobilenetv2")
FLAVOURS = ("torch", "keras")

# Default GroupNorm group count G (the network uses min(G, channels)).
DEFAULT_GN_GROUPS = {
    ("resnet50", "torch"): 64,
    ("resnet50", "keras"): 32,
    ("mobilenetv2", "torch"): 16,
    ("mobilenetv2", "keras"): 16,
}

RESNET_LAYERS = (3, 4, 6, 3)
RESNET_PLANES = (64, 128, 256, 512)
# MobileNetV2 inverted residual settings: t (expansion), c (channels), n (repeats), s (stride)
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                 (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def group_norm(channels, groups, eps=1e-5):
    """The seed's GroupNorm helper / the official my.Norm: min(G, C) groups."""
    return nn.GroupNorm(min(groups, channels), channels, eps=eps)


def tf_same_pad_stride2(x):
    """The seed's correct_pad for a 3x3 stride-2 valid conv: TensorFlow 'same' padding.

    pad top = H % 2, bottom = 1, left = W % 2, right = 1 (even side: 0 before, 1 after;
    odd side: 1 and 1)."""
    h, w = x.shape[-2], x.shape[-1]
    return F.pad(x, (w % 2, 1, h % 2, 1))


# ----------------------------------------------------------------------------- ResNet50


class Bottleneck(nn.Module):
    """XBN bottleneck: conv1 1x1 - BN - ReLU - conv2 3x3 - GN - ReLU - conv3 1x1 - BN,
    plus the (projected) shortcut, then ReLU.

    keras=False: official P2 layout (stride on conv2, no bias, BN eps 1e-5).
    keras=True:  seed layout (stride on conv1, all convs with bias, BN eps 1.001e-5)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample, keras, gn_groups):
        super().__init__()
        bias = keras
        eps = 1.001e-5 if keras else 1e-5
        s1, s2 = (stride, 1) if keras else (1, stride)
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=s1, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes, eps=eps)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=s2, padding=1, bias=bias)
        self.bn2 = group_norm(planes, gn_groups)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=bias)
        self.bn3 = nn.BatchNorm2d(out, eps=eps)
        self.relu = nn.ReLU()
        if downsample:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=bias),
                nn.BatchNorm2d(out, eps=eps))
        else:
            self.downsample = None

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        sc = x if self.downsample is None else self.downsample(x)
        return self.relu(y + sc)


class ResNet50XBN(nn.Module):
    def __init__(self, flavour="torch", classes=1000, gn_groups=None):
        super().__init__()
        assert flavour in FLAVOURS
        self.flavour = flavour
        keras = flavour == "keras"
        g = gn_groups or DEFAULT_GN_GROUPS[("resnet50", flavour)]
        self.gn_groups = g
        # keras: ZeroPadding2D(3) + Conv2D 7x7/2 valid == conv padding 3
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=keras)
        if keras:
            self.bn1 = nn.BatchNorm2d(64, eps=1.001e-5)
        else:
            # official stem norm is my.Norm = GroupNorm(min(64, 64), 64)
            self.bn1 = group_norm(64, g)
        self.relu = nn.ReLU()
        inplanes = 64
        for li, (n, p) in enumerate(zip(RESNET_LAYERS, RESNET_PLANES)):
            stride = 1 if li == 0 else 2
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(inplanes, p, stride if b == 0 else 1, b == 0,
                                         keras, g))
                inplanes = p * 4
            setattr(self, "layer%d" % (li + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(512 * 4, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.flavour == "keras":
            # ZeroPadding2D(1) + MaxPool2D(3, 2, valid): zero padding (inputs are >= 0)
            x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)
        else:
            x = F.max_pool2d(x, 3, 2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = x.mean(dim=(2, 3))
        return self.fc(x)


# -------------------------------------------------------------------------- MobileNetV2


def make_divisible_keras(v, divisor=8, min_value=None):
    """The seed's _make_divisible: round to nearest multiple, never below 90 %."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def make_divisible_torch(x, divisible_by=8):
    """The official code's make_divisible: ceil to a multiple of 8."""
    return int(math.ceil(x * 1.0 / divisible_by) * divisible_by)


class StemConv(nn.Sequential):
    """features.0: conv 3x3/2 (no bias), BN, ReLU6. keras=True pads TF-style first."""

    def __init__(self, cout, eps, keras):
        super().__init__(nn.Conv2d(3, cout, 3, 2, 0 if keras else 1, bias=False),
                         nn.BatchNorm2d(cout, eps=eps), nn.ReLU6())
        self.keras = keras

    def forward(self, x):
        if self.keras:
            x = tf_same_pad_stride2(x)
        return super().forward(x)


class PointwiseConv(nn.Sequential):
    """features.18: conv 1x1 (no bias), BN, ReLU6."""

    def __init__(self, cin, cout, eps):
        super().__init__(nn.Conv2d(cin, cout, 1, bias=False),
                         nn.BatchNorm2d(cout, eps=eps), nn.ReLU6())


def depthwise3x3(x, weight, stride, pad):
    """Depthwise 3x3 conv (no bias) as nine shifted multiply-adds: the same result as
    F.conv2d(x, weight, None, stride, pad, groups=C), much faster in float64."""
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    oh, ow = (h - 3) // stride + 1, (w - 3) // stride + 1
    out = None
    for i in range(3):
        for j in range(3):
            t = x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            t = t * weight[:, 0, i, j].view(1, -1, 1, 1)
            out = t if out is None else out + t
    return out


class InvertedResidual(nn.Module):
    """MobileNetV2 XBN block; the norm after the depthwise conv is GroupNorm.

    torch flavour, t == 1: conv = [dw 3x3, GN, ReLU6, pw 1x1, BN]
    torch flavour, t > 1:  conv = [pw, BN, ReLU6, dw, GN, ReLU6, pw, BN]
    keras flavour:         conv = [pw, BN, ReLU6, dw, GN, ReLU6, pw, BN, ReLU6]
                           (expansion always present; TF padding before a stride-2 dw)"""

    def __init__(self, inp, oup, hidden, stride, expand, keras, eps, gn_groups):
        super().__init__()
        self.stride = stride
        self.keras = keras
        self.use_res = stride == 1 and inp == oup
        dw_pad = 0 if (keras and stride == 2) else 1
        layers = []
        if expand:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False),
                       nn.BatchNorm2d(hidden, eps=eps), nn.ReLU6()]
        self.dw_index = len(layers)
        layers += [nn.Conv2d(hidden, hidden, 3, stride, dw_pad, groups=hidden, bias=False),
                   group_norm(hidden, gn_groups), nn.ReLU6(),
                   nn.Conv2d(hidden, oup, 1, bias=False),
                   nn.BatchNorm2d(oup, eps=eps)]
        if keras:
            layers.append(nn.ReLU6())
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        y = x
        for i, m in enumerate(self.conv):
            if i == self.dw_index:
                if self.keras and self.stride == 2:
                    y = tf_same_pad_stride2(y)
                if y.dtype == torch.float64:  # torch's float64 depthwise conv is very slow
                    y = depthwise3x3(y, m.weight, m.stride[0], m.padding[0])
                    continue
            y = m(y)
        return x + y if self.use_res else y


class MobileNetV2XBN(nn.Module):
    def __init__(self, flavour="torch", width=1.0, classes=1000, gn_groups=None):
        super().__init__()
        assert flavour in FLAVOURS
        self.flavour = flavour
        keras = flavour == "keras"
        g = gn_groups or DEFAULT_GN_GROUPS[("mobilenetv2", flavour)]
        self.gn_groups = g
        eps = 1e-3 if keras else 1e-5
        if keras:
            inp = make_divisible_keras(32 * width, 8)
            last = make_divisible_keras(1280 * width, 8) if width > 1.0 else 1280
        else:
            inp = 32  # "first channel is always 32"
            last = make_divisible_torch(1280 * width) if width > 1.0 else 1280
        self.last_channel = last
        feats = [StemConv(inp, eps, keras)]
        for t, c, n, s in MBV2_SETTINGS:
            if keras:
                oup = make_divisible_keras(int(c * width), 8)
            else:
                oup = make_divisible_torch(c * width) if t > 1 else c
            for i in range(n):
                stride = s if i == 0 else 1
                hidden = int(round(inp * t))
                feats.append(InvertedResidual(inp, oup, hidden, stride,
                                              expand=keras or t != 1, keras=keras,
                                              eps=eps, gn_groups=g))
                inp = oup
        feats.append(PointwiseConv(inp, last, eps))
        self.features = nn.Sequential(*feats)
        # torch: nn.Linear; keras: Dropout (identity) + 1x1 conv_preds with bias == dense
        self.classifier = nn.Linear(last, classes)

    def forward(self, x):
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(x)


# ------------------------------------------------------------------------------ helpers


def build_model(arch, flavour, width=1.0, classes=1000, gn_groups=None):
    if arch == "resnet50":
        if width not in (None, 1.0):
            raise ValueError("resnet50 has no width multiplier (got %r)" % width)
        return ResNet50XBN(flavour, classes, gn_groups)
    if arch == "mobilenetv2":
        return MobileNetV2XBN(flavour, 1.0 if width is None else float(width), classes,
                              gn_groups)
    raise ValueError("unknown arch %r" % arch)


def model_state(model):
    """state_dict without num_batches_tracked, as float32 tensors, in module order."""
    return {k: v.detach().to(torch.float32).contiguous()
            for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def expected_shapes(arch, flavour, width=1.0, classes=1000):
    m = build_model(arch, flavour, width, classes)
    return {k: tuple(v.shape) for k, v in model_state(m).items()}


def load_state(model, state):
    """Load a num_batches_tracked-free state dict strictly (names and shapes)."""
    exp = model_state(model)
    missing = sorted(set(exp) - set(state))
    extra = sorted(set(state) - set(exp))
    if missing or extra:
        raise ValueError("tensor names differ: missing %s, unexpected %s"
                         % (missing[:8], extra[:8]))
    for k, v in exp.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError("%s: shape %s, expected %s"
                             % (k, tuple(state[k].shape), tuple(v.shape)))
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
    return model


# Preprocessing defaults per docs/model-format.md (mean/std on the [0, 1] scale).
def default_preprocess(arch, flavour, input_size=224):
    if flavour == "torch":
        return {"resize_mode": "shorter_crop", "resize": int(round(input_size * 256 / 224)),
                "crop": input_size, "channel_order": "RGB",
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "exif_orient": True}
    if arch == "resnet50":  # Keras "caffe"
        return {"resize_mode": "direct", "resize": input_size, "crop": input_size,
                "channel_order": "BGR",
                "mean": [103.939 / 255, 116.779 / 255, 123.68 / 255],
                "std": [1 / 255, 1 / 255, 1 / 255], "exif_orient": True}
    return {"resize_mode": "direct", "resize": input_size, "crop": input_size,
            "channel_order": "RGB", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
            "exif_orient": True}


def structured_images(n, h, w, seed):
    """n deterministic image-like tensors [n, 3, h, w] on the [0, 1] pixel scale: smooth
    low-frequency fields (upsampled coarse noise + oriented sinusoids + a blob) plus a
    little pixel noise. Different seeds / items give clearly different images."""
    gen = torch.Generator().manual_seed(int(seed))
    out = torch.empty(n, 3, h, w)
    yy = torch.linspace(-1, 1, h).view(1, h, 1)
    xx = torch.linspace(-1, 1, w).view(1, 1, w)
    for i in range(n):
        g = int(torch.randint(2, 7, (1,), generator=gen))
        coarse = torch.rand(1, 3, g, g, generator=gen)
        img = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
        for _ in range(2):
            fx, fy = (torch.rand(2, generator=gen) * 6 - 3).tolist()
            ph = float(torch.rand(1, generator=gen)) * 6.283
            amp = torch.rand(3, 1, 1, generator=gen) * 0.3
            img = img + amp * torch.sin(3.1416 * (fx * xx + fy * yy) + ph)
        cx, cy = (torch.rand(2, generator=gen) * 1.6 - 0.8).tolist()
        r = 0.1 + 0.4 * float(torch.rand(1, generator=gen))
        blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img = img + (torch.rand(3, 1, 1, generator=gen) - 0.5) * blob
        img = img + 0.04 * torch.randn(3, h, w, generator=gen)
        out[i] = img.clamp(0, 1)
    return out


def normalize(images01, preprocess):
    """Apply a preprocess dict's per-plane mean/std to [0, 1] images (planes already in
    the model's channel order)."""
    mean = torch.tensor(preprocess["mean"], dtype=images01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(preprocess["std"], dtype=images01.dtype).view(1, 3, 1, 1)
    return (images01 - mean) / std


def structured_inputs(n, h, w, seed, arch, flavour):
    """Network inputs: structured_images normalised with the model's default preprocess."""
    return normalize(structured_images(n, h, w, seed), default_preprocess(arch, flavour))


def aliveness(logits):
    """Per-input deviation from the mean logit vector, relative to the logit spread:
    max_j |L[i, j] - mean_i L[:, j]| / (max L - min L). A collapsed network gives ~0."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    spread = float(logits.max() - logits.min())
    dev = (logits - logits.mean(0, keepdim=True)).abs().amax(1)
    return (dev / max(spread, 1e-30)).tolist()
