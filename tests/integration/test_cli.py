"""The command line's one style (cli/args.h), and the preprocess spec the commands and the
daemon build from a model file and its overrides (image/preprocess.h).

Every command prints its usage on stdout for --help (exit 0) and, after a mistake, one line
"CMD: what is wrong" and the usage on stderr (exit 2). A model file whose `preprocess` is
wrong is refused by every command and by the daemon, naming the key. An override given to
the daemon (`--preprocess`) and the same keys given to `xbnserve preprocess` make the same
tensor: the daemon's answer equals `xbnserve predict` on that tensor, score for score.
Env: XBN_BIN (binary), XBN_MODELS (build/models)."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import xbnweights as xw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("XBN_BIN", os.path.join(ROOT, "build/xbnserve"))
MODELS = os.environ.get("XBN_MODELS", os.path.join(ROOT, "build/models"))
SMALL = os.path.join(MODELS, "mobilenetv2-keras-035.safetensors")  # 17 classes, fast
COMMANDS = ["predict", "inspect", "preprocess", "bench"]


def make_jpeg(path):
    """A 120x90 photo-like JPEG: smooth gradients, so the scores depend on the spec."""
    x = np.linspace(0, 1, 120)[None, :, None]
    y = np.linspace(0, 1, 90)[:, None, None]
    rgb = np.concatenate([x * 255 + 0 * y, y * 255 + 0 * x, (1 - x) * (1 - y) * 255], axis=2)
    Image.fromarray(rgb.astype(np.uint8)).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory):
    return make_jpeg(str(tmp_path_factory.mktemp("cli") / "photo.jpg"))


def run(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def usage_error(p, cmd, message):
    """Exit 2, the message as stderr's first line, then the command's usage."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert lines[0] == f"{cmd}: {message}", p.stderr
    assert lines[1].startswith(f"usage: xbnserve {cmd} "), p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help(cmd):
    for flag in ("--help", "-h"):
        p = run(cmd, flag)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert p.stdout.startswith(f"usage: xbnserve {cmd} "), p.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_mistakes_same_wording(cmd):
    usage_error(run(cmd, "--no-such-option"), cmd, "unknown option '--no-such-option'")
    usage_error(run(cmd, "--model"), cmd, "option --model needs a value")
    usage_error(run(cmd, "--model=" + SMALL, "--no-such-option=1"), cmd,
                "unknown option '--no-such-option=1'")


def test_values_at_their_bounds(tmp_path, jpeg):
    out = str(tmp_path / "x.npy")
    # predict --top-k: 2^20 passes (all 17 classes), one more is refused before any work
    p = run("predict", "--model", SMALL, "--top-k", str(1 << 20), jpeg)
    assert p.returncode == 0, p.stderr
    assert len(json.loads(p.stdout)["results"][0]["top"]) == 17
    usage_error(run("predict", "--model", SMALL, "--top-k", str((1 << 20) + 1), jpeg), "predict",
                "bad value for --top-k: '1048577' (expected an integer in [0, 1048576])")
    usage_error(run("predict", "--model", SMALL, "--top-k", "-1", jpeg), "predict",
                "bad value for --top-k: '-1' (expected an integer in [0, 1048576])")
    # --name=value is --name value
    p2 = run("predict", "--model=" + SMALL, "--top-k=3", jpeg)
    p3 = run("predict", "--model", SMALL, "--top-k", "3", jpeg)
    assert p2.returncode == 0 and p2.stdout == p3.stdout and len(
        json.loads(p2.stdout)["results"][0]["top"]) == 3
    # preprocess --max-pixels: 2^40 passes, 2^40 + 1, hex and a space are refused
    assert run("preprocess", jpeg, "-o", out, "--max-pixels", str(1 << 40)).returncode == 0
    for bad in (str((1 << 40) + 1), "0x10", " 5", "5 ", ""):
        usage_error(run("preprocess", jpeg, "-o", out, "--max-pixels", bad), "preprocess",
                    f"bad value for --max-pixels: '{bad}' (expected an integer in "
                    "[1, 1099511627776])")
    usage_error(run("bench", "--model", SMALL, "--seconds", "0.0099"), "bench",
                "bad value for --seconds: '0.0099' (expected a number in [0.01, 3600])")
    usage_error(run("bench", "--model", SMALL, "--seconds", "nan"), "bench",
                "bad value for --seconds: 'nan' (expected a number in [0.01, 3600])")
    usage_error(run("bench", "--model", SMALL, "--profile=1"), "bench",
                "option --profile takes no value")
    usage_error(run("bench", "--model", SMALL, "extra"), "bench", "unexpected argument 'extra'")
    usage_error(run("bench"), "bench", "--model is required")
    for bad in ("0", "1001"):
        usage_error(run("bench", "--model", SMALL, "--slices", bad), "bench",
                    f"bad value for --slices: '{bad}' (expected an integer in [1, 1000])")
    usage_error(run("predict", "--model", SMALL), "predict", "no INPUT given")
    usage_error(run("inspect"), "inspect", "no MODEL given")
    usage_error(run("inspect", SMALL, SMALL), "inspect", "one model at a time")
    usage_error(run("preprocess", jpeg), "preprocess", "-o OUT.npy is required")
    usage_error(run("preprocess", jpeg, jpeg, "-o", out), "preprocess", "one image at a time")


def test_preprocess_flags_checked_as_the_spec(tmp_path, jpeg):
    """The spec flags go through the spec's one parser: its ranges, its messages."""
    out = str(tmp_path / "x.npy")
    crop = "preprocess.crop must be an integer in [1, 4096]"
    for bad in ("0", "4097", "1.5"):
        usage_error(run("preprocess", jpeg, "-o", out, "--crop", bad), "preprocess", crop)
    usage_error(run("preprocess", jpeg, "-o", out, "--crop", "abc"), "preprocess",
                "bad value for --crop: 'abc' (expected a number)")
    usage_error(run("preprocess", jpeg, "-o", out, "--std", "1,0,1"), "preprocess",
                "preprocess.std must be 3 finite positive numbers")
    usage_error(run("preprocess", jpeg, "-o", out, "--mean", "0.5,0.5"), "preprocess",
                "preprocess.mean must be 3 finite numbers")
    usage_error(run("preprocess", jpeg, "-o", out, "--mode", "crop"), "preprocess",
                'preprocess.resize_mode must be "shorter_crop" or "direct"')
    p = run("preprocess", jpeg, "-o", out, "--crop", "32", "--resize", "4096")
    assert p.returncode == 0, p.stderr


@pytest.fixture
def bad_spec_models(tmp_path):
    tensors, meta = xw.load_safetensors(SMALL)
    cases = {
        "unknown": ({"crop": 224, "crpo": 1}, "metadata preprocess.crpo: unknown key"),
        "range": ({"crop": 0}, "metadata preprocess.crop must be an integer in [1, 4096]"),
        "padding": ({"resize_mode": "shorter_crop", "resize": 200, "crop": 224},
                    "metadata preprocess: resize 200 is smaller than crop 224"),
        "text": ("{not json", "metadata preprocess must be a JSON object"),
    }
    out = {}
    for name, (spec, msg) in cases.items():
        m = dict(meta, preprocess=spec if isinstance(spec, str) else json.dumps(spec))
        path = str(tmp_path / f"{name}.safetensors")
        xw.save_safetensors(path, tensors, m)
        out[name] = (path, msg)
    return out


def test_bad_spec_refused_by_every_command(bad_spec_models, tmp_path, jpeg):
    out = str(tmp_path / "x.npy")
    for path, msg in bad_spec_models.values():
        for cmd, args in (("inspect", [path]), ("predict", ["--model", path, jpeg]),
                          ("preprocess", ["--model", path, jpeg, "-o", out]),
                          ("bench", ["--model", path, "--seconds", "0.01"])):
            p = run(cmd, *args)
            assert p.returncode == 1, (cmd, path, p.stderr)
            assert p.stderr.startswith(f"{cmd}: {path}: {msg}"), (cmd, p.stderr)
            assert p.stderr.count("\n") == 1, p.stderr  # one line


def test_bad_spec_refused_by_the_daemon(bad_spec_models):
    for path, msg in bad_spec_models.values():
        p = run("serve", "--port", "0", "--model", "bad=" + path, timeout=60)
        assert p.returncode == 1, p.stderr
        assert f"model bad ({path}): {msg}" in p.stderr, p.stderr


def serve(*args):
    """Start the daemon on a free port; (process, port) once it says ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
    proc = subprocess.Popen([BIN, "serve", "--port", "0", *args], env=env,
                            stderr=subprocess.PIPE, text=True)
    port, deadline, lines = None, time.time() + 60, []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        port = int(m.group(1)) if m else port
        if line.rstrip().endswith(" ready"):
            return proc, port
    proc.kill()
    proc.wait()
    raise AssertionError("daemon did not start:\n" + "".join(lines))


def test_daemon_override_is_the_cli_spec(tmp_path, jpeg):
    """--preprocess on the daemon and the same keys as `preprocess` flags: same tensor, so
    the same scores, text for text (one engine thread on both sides)."""
    override = {"crop": 64, "resize": 80, "resize_mode": "shorter_crop", "channel_order": "BGR"}
    proc, port = serve("--model", "small=" + SMALL, "--threads-per-worker", "1",
                       "--preprocess", json.dumps(override))
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/v1/models")
        listing = c.getresponse().read().decode()
        c.request("POST", "/v1/models/small:predict?top_k=0", body=open(jpeg, "rb").read(),
                  headers={"Content-Type": "image/jpeg"})
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200, body
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert json.loads(listing)["details"][0]["input_size"] == 64
    served = {p["index"]: p["score"] for p in json.loads(body)["predictions"][0]}
    npy = str(tmp_path / "x.npy")
    p = run("preprocess", "--model", SMALL, "--crop", "64", "--resize", "80", "--mode",
            "shorter_crop", "--bgr", jpeg, "-o", npy)
    assert p.returncode == 0, p.stderr
    p = run("predict", "--model", SMALL, "--top-k", "0", npy)
    assert p.returncode == 0, p.stderr
    cli = {t["index"]: t["score"] for t in json.loads(p.stdout)["results"][0]["top"]}
    assert len(cli) == 17 and cli == served
    # and the override changed something: the file's own spec gives other scores
    p = run("predict", "--model", SMALL, "--top-k", "0", jpeg)
    own = {t["index"]: t["score"] for t in json.loads(p.stdout)["results"][0]["top"]}
    assert own != served


def test_bench_slices():
    """--slices N: a ready line after the warm-up, then nothing until a line arrives on stdin,
    one slice line per line read, and the last line sums every slice; stdin ending early is
    an error, exit 1."""
    p = subprocess.Popen([BIN, "bench", "--model", SMALL, "--seconds", "0.3", "--slices", "3"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert json.loads(p.stdout.readline()) == {"ready": True}
        slices = []
        for k in range(3):
            time.sleep(0.2)  # the slice waits for its line: its time excludes this pause
            p.stdin.write("go\n")
            p.stdin.flush()
            slices.append(json.loads(p.stdout.readline()))
            assert slices[-1]["slice"] == k and slices[-1]["iterations"] >= 3
            assert 0.1 <= slices[-1]["seconds"] < 0.19
        p.stdin.close()
        total = json.loads(p.stdout.read())
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()
    assert total["iterations"] == sum(s["iterations"] for s in slices)
    seconds = sum(s["seconds"] for s in slices)
    assert total["img_per_s"] == pytest.approx(total["iterations"] / seconds, rel=1e-3)
    p = subprocess.run([BIN, "bench", "--model", SMALL, "--seconds", "0.2", "--slices", "2"],
                       input="go\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr == "bench: stdin ended after 1 of 2 slices\n"
    assert [json.loads(line) for line in p.stdout.splitlines()][0] == {"ready": True}
    assert len(p.stdout.splitlines()) == 2
