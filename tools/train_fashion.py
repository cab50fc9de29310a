#!/usr/bin/python3
"""train_fashion.py - train an XBN network on Fashion-MNIST and write an xbnserve model file.

    /usr/bin/python3 tools/train_fashion.py -o models/fashion.safetensors \
        --report models/fashion-report.json            # the shipped model (docs/fashion.md)
    /usr/bin/python3 tools/train_fashion.py --arch resnet50 -o build/fashion-r50.safetensors

The data are the IDX files of Debian's dataset-fashion-mnist package (60,000 training and
10,000 test images of 28x28 gray pixels, 10 classes); nothing is downloaded. The network
is the torch-flavour MobileNetV2-XBN (or ResNet50-XBN) of tools/xbnmodels.py, the one the
engine serves, and the file is written by tools/xbnweights.py.

Training sees the images through the preprocessing the model file declares, the one the
daemon applies to a PNG: gray to RGB, a direct bilinear resize to the input size (PIL),
then (x / 255 - mean) / std with the training set's mean and std. Augmentation
(horizontal flips; random shifts with --shift) works on the resized 8-bit images. Seeds are fixed and
torch runs on 2 threads, so a run on the same machine repeats its result.

Training runs the modules of tools/train_ops.py in place of torch's GroupNorm and depthwise
convolutions (the same maths, faster on the CPU); the trained state is then loaded into
the plain network, which is what is evaluated and written (--torch-ops trains with torch's).

The JSON report holds the test accuracy, per-class accuracy, the confusion matrix (rows:
true class, columns: predicted), the settings, and the wall and CPU minutes.
"""

import argparse
import ctypes
import gzip
import hashlib
import json
import math
import os
import platform
import struct
import subprocess
import sys
import time

# Threads that sleep at OpenMP barriers instead of spinning. On cores shared with other
# work a spinning thread burns the time slice its partner needs: one training step on the
# 2 shared cores of the development machine took 25 s with libgomp's default policy and
# 2 s with this one (set before torch loads libgomp).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def keep_freed_memory():
    """glibc gives large blocks their own mappings and returns the top of the heap to the
    kernel once 128 KiB (growing to 64 MiB) of it is free, so the activations of every
    training step were faulted in afresh; keeping them mapped made a step 12-20% less CPU
    on the development machine. M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3 (malloc.h):
    blocks up to 32 MiB come from the heap, which is trimmed only past 1 GiB free."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-1, 1 << 30)
    libc.mallopt(-3, 32 << 20)


keep_freed_memory()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_ops  # noqa: E402
import xbnmodels as xm  # noqa: E402
import xbnweights as xw  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"  # dpkg -L dataset-fashion-mnist
DATA_PACKAGE = "dataset-fashion-mnist"
# The dataset's class names, in label order (the package's README).
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


# ---------------------------------------------------------------------------------- data


def read_idx(path):
    """An IDX file (gzip) as a uint8 array: magic 0x0000 08 NDIM, NDIM big-endian sizes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError("%s: %d bytes of data for shape %s" % (path, data.size, dims))
    return data.reshape(dims)


def load_split(split, data_dir=DATA_DIR):
    """(images uint8 [N, 28, 28], labels int64 [N]) of 'train' or 'test'."""
    img_file, lab_file = FILES[split]
    images = read_idx(os.path.join(data_dir, img_file))
    labels = read_idx(os.path.join(data_dir, lab_file)).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError("%s: %d images, %d labels" % (split, images.shape[0], labels.shape[0]))
    return images, labels


def preprocess_spec(size, mean, std):
    """The model file's `preprocess` (docs/model-format.md): the 28x28 images are square,
    so a direct resize keeps the whole garment; no EXIF in the data set."""
    return {"resize_mode": "direct", "resize": size, "crop": size, "channel_order": "RGB",
            "mean": [mean] * 3, "std": [std] * 3, "exif_orient": False}


def resize_all(images, size):
    """The declared preprocessing up to the 8-bit planes, with PIL as the daemon mimics
    it: gray to RGB, Image.resize((S, S), BILINEAR). A PNG of these pixels is lossless,
    so its decode is the same array. The three planes of a gray image are equal; one is
    kept (checked on the first image)."""
    out = np.empty((len(images), size, size), np.uint8)
    for i, a in enumerate(images):
        rgb = np.asarray(Image.fromarray(a, "L").convert("RGB")
                         .resize((size, size), Image.BILINEAR))
        if i == 0 and not (np.array_equal(rgb[..., 0], rgb[..., 1])
                           and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise AssertionError("RGB planes of a gray image differ after resize")
        out[i] = rgb[..., 0]
    return torch.from_numpy(out)


def to_input(planes_u8, mean, std):
    """[N, S, S] uint8 -> [N, 3, S, S] float32 network input: ToTensor + Normalize."""
    x = (planes_u8.float() / 255 - mean) / std
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


def augment(batch_u8, pad, erase, fill, gen):
    """Random shifts up to `pad` pixels (zero fill: the background is black), random
    horizontal flips, and with probability `erase` a random rectangle (2-25% of the image,
    aspect 0.3-3.3) set to `fill`, the mean pixel (random erasing, Zhong et al. 2017),
    per image."""
    n, s, _ = batch_u8.shape
    flip = torch.rand(n, generator=gen) < 0.5
    if pad:
        padded = F.pad(batch_u8, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
        out = torch.stack([padded[i, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(n)])
    else:
        out = batch_u8.clone()
    out[flip] = out[flip].flip(-1)
    if erase:
        u = torch.rand(n, 5, generator=gen).tolist()
        for i in range(n):
            if u[i][0] >= erase:
                continue
            area = s * s * (0.02 + 0.23 * u[i][1])
            aspect = math.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * u[i][2])
            h = min(s, max(1, round(math.sqrt(area * aspect))))
            w = min(s, max(1, round(math.sqrt(area / aspect))))
            y0, x0 = int(u[i][3] * (s - h + 1)), int(u[i][4] * (s - w + 1))
            out[i, y0:y0 + h, x0:x0 + w] = fill
    return out


# --------------------------------------------------------------------------------- model


def init_weights(model):
    """The official MobileNetV2 / ResNet initialisation (He normal, fan out; norms 1 and
    0; small classifier), and the last norm of every residual branch at 0 so each block
    starts as the identity (trains faster in short schedules).

    Depthwise convolutions take He normal on their true fan-in (9): torch's fan-out of a
    grouped weight counts every channel, which makes them ~sqrt(C) times too small; the
    GroupNorm after them hides the scale in the forward pass, but the update of a
    normalised weight grows as its norm shrinks, and the too-small ones made training
    unstable at the learning rates that suit the rest of the network."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    for bn in xw._residual_last_bns(model):
        nn.init.zeros_(bn.weight)


def param_groups(model, weight_decay):
    """Weight decay on convolution and dense weights only, not on norms and biases."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    other = [p for p in model.parameters() if p.dim() <= 1]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": other, "weight_decay": 0.0}]


def lr_at(step, total, warmup, peak):
    """Linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def evaluate(model, planes_u8, labels, mean, std, batch=500):
    """Predicted classes of every image (eval mode, float32)."""
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(planes_u8), batch):
            preds.append(model(to_input(planes_u8[i:i + batch], mean, std)).argmax(1))
    return torch.cat(preds)


def confusion(pred, labels, classes):
    m = torch.zeros(classes, classes, dtype=torch.int64)
    m.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    return m


# ------------------------------------------------------------------------------- helpers


def package_version(name):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------- main


def train(args):
    t_wall, t_cpu = time.time(), time.process_time()
    torch.set_num_threads(args.threads)
    # Denormal floats take a slow path in the FPU; training loses nothing by zeroing them.
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    train_img, train_lab = load_split("train", args.data)
    test_img, test_lab = load_split("test", args.data)
    if args.train_subset:
        keep = torch.randperm(len(train_img), generator=gen)[:args.train_subset].numpy()
        train_img, train_lab = train_img[keep], train_lab[keep]
    if args.test_subset:
        test_img, test_lab = test_img[:args.test_subset], test_lab[:args.test_subset]
    # The data set's own statistics on the [0, 1] scale (28x28 training pixels), rounded:
    # the rounded values are what the model file declares and what training uses.
    mean = round(float(train_img.mean()) / 255, 4)
    std = round(float((train_img / 255.0).std()), 4)
    size = args.input_size
    pre = preprocess_spec(size, mean, std)
    x_train = resize_all(train_img, size)
    x_test = resize_all(test_img, size)
    y_train = torch.from_numpy(train_lab)
    y_test = torch.from_numpy(test_lab)
    print("data: %d train, %d test, %dx%d, mean %.4f std %.4f (%.0fs)"
          % (len(x_train), len(x_test), size, size, mean, std, time.time() - t_wall),
          file=sys.stderr, flush=True)

    width = args.width if args.arch == "mobilenetv2" else 1.0
    model = xm.build_model(args.arch, "torch", width, len(LABELS))
    init_weights(model)
    model = model.to(memory_format=torch.channels_last)
    if not args.torch_ops:
        train_ops.install(model)
    params = sum(p.numel() for p in model.parameters())
    if args.opt == "sgd":
        opt = torch.optim.SGD(param_groups(model, args.wd), lr=args.lr, momentum=0.9,
                              nesterov=True, foreach=True)
    else:
        opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, foreach=True)
    steps_per_epoch = len(x_train) // args.batch  # the last partial batch is dropped
    total = steps_per_epoch * args.epochs
    warmup = min(total // 10, steps_per_epoch)
    pad = round(args.shift * size / 28)
    fill = round(mean * 255)
    epochs = []
    step = 0
    for epoch in range(args.epochs):
        t0 = time.time()
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch:(b + 1) * args.batch]
            x = to_input(augment(x_train[idx], pad, args.erase, fill, gen), mean, std)
            y = y_train[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, warmup, args.lr)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        e = {"epoch": epoch + 1, "loss": round(loss_sum / seen, 4),
             "train_accuracy": round(correct / seen, 4), "wall_s": round(time.time() - t0, 1)}
        if args.eval_every and (epoch + 1) % args.eval_every == 0 and epoch + 1 < args.epochs:
            e["test_accuracy"] = round(float((evaluate(model, x_test, y_test, mean, std)
                                              == y_test).float().mean()), 4)
        epochs.append(e)
        print("epoch %s" % json.dumps(e), file=sys.stderr, flush=True)

    # The trained state in the network the engine serves, built anew: the modules of
    # train_ops.py are a training device, the plain model is what gets measured and written.
    plain = xm.build_model(args.arch, "torch", width, len(LABELS))
    plain.load_state_dict(model.state_dict(), strict=True)
    model = plain.to(memory_format=torch.channels_last)
    pred = evaluate(model, x_test, y_test, mean, std)
    cm = confusion(pred, y_test, len(LABELS))
    accuracy = float(cm.trace()) / len(y_test)
    per_class = {LABELS[c]: round(float(cm[c, c]) / max(1, int(cm[c].sum())), 4)
                 for c in range(len(LABELS))}
    wall_min = (time.time() - t_wall) / 60
    cpu_min = (time.process_time() - t_cpu) / 60
    print("test accuracy %.4f (%d/%d), %.1f wall minutes, %.1f CPU minutes"
          % (accuracy, int(cm.trace()), len(y_test), wall_min, cpu_min), file=sys.stderr)

    version = package_version(DATA_PACKAGE)
    source = ("tools/train_fashion.py: %s-XBN trained on Fashion-MNIST (Debian %s %s), "
              "%d training images, %d epochs, seed %d; test accuracy %.4f on %d images"
              % (args.arch, DATA_PACKAGE, version, len(x_train), args.epochs, args.seed,
                 accuracy, len(y_test)))
    meta = xw.make_metadata(args.arch, "torch", width, len(LABELS), size, LABELS, source,
                            preprocess=pre)
    model = model.to(memory_format=torch.contiguous_format).eval()
    xw.write_model(args.output, model, meta)
    print("wrote %s (%d bytes)" % (args.output, os.path.getsize(args.output)), file=sys.stderr)

    if args.report:
        report = {
            "model": os.path.basename(args.output),
            "model_sha256": sha256(args.output),
            "model_bytes": os.path.getsize(args.output),
            "arch": args.arch, "flavour": "torch", "width": width, "input_size": size,
            "parameters": params, "labels": LABELS, "preprocess": pre,
            "data": {"package": DATA_PACKAGE, "version": version, "dir": args.data,
                     "train_images": len(x_train), "test_images": len(y_test)},
            "settings": {"seed": args.seed, "epochs": args.epochs, "batch": args.batch,
                         "optimizer": args.opt, "lr": args.lr, "weight_decay": args.wd,
                         "schedule": "linear warm-up %d steps, cosine to 0" % warmup,
                         "label_smoothing": args.label_smoothing,
                         "augmentation": "random shift up to %d px (of %d), horizontal flip, "
                                         "random erasing p %g" % (pad, size, args.erase),
                         "threads": args.threads, "torch": torch.__version__,
                         "training_ops": "torch" if args.torch_ops else "tools/train_ops.py"},
            "machine": {"cpu": cpu_name(), "cpus": os.cpu_count()},
            "date": time.strftime("%Y-%m-%d"),
            "wall_minutes": round(wall_min, 1), "cpu_minutes": round(cpu_min, 1),
            "epochs": epochs,
            "test_accuracy": round(accuracy, 4), "test_correct": int(cm.trace()),
            "per_class_accuracy": per_class,
            "confusion_matrix": cm.tolist(),
        }
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return accuracy


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=xm.ARCHS, default="mobilenetv2")
    ap.add_argument("--width", type=float, default=0.5, help="MobileNetV2 width multiplier")
    ap.add_argument("--input-size", type=int, default=48, help="square input side S")
    ap.add_argument("--epochs", type=int, default=19)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--opt", choices=("sgd", "adamw"), default="sgd")
    ap.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    ap.add_argument("--wd", type=float, default=5e-4, help="weight decay")
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--shift", type=float, default=0.0,
                    help="random shift, in pixels of the 28x28 original")
    ap.add_argument("--erase", type=float, default=0.0,
                    help="probability of random erasing per training image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-ops", action="store_true",
                    help="train with torch's own GroupNorm and depthwise modules, not "
                         "tools/train_ops.py's faster ones")
    ap.add_argument("--train-subset", type=int, default=0, help="trials: use N training images")
    ap.add_argument("--test-subset", type=int, default=0, help="trials: use N test images")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="trials: test accuracy every K epochs (log only)")
    ap.add_argument("--data", default=DATA_DIR)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--report", default=None, help="JSON report path")
    args = ap.parse_args(argv)
    if not os.path.exists(os.path.join(args.data, FILES["train"][0])):
        raise SystemExit("no Fashion-MNIST in %s: apt-get install %s" % (args.data, DATA_PACKAGE))
    train(args)


if __name__ == "__main__":
    main()
