#!/usr/bin/python3
"""make mutants: apply each break of tests/mutants/mutants.py, one at a time, to a scratch
copy of the tree (build/mutants/src, never the working tree), rebuild what changed, run the
tests named for it, and report killed (by which test), SURVIVED or STALE.

  tools/mutants.py [--only ID,ID] [--list] [--no-baseline] [--keep]

STALE: the original text is not found exactly once (the file changed: update the entry),
the mutant did not compile (unless it is a compile-time catch), or its tests collected or
ran nothing.  Exit status 0 only when every mutant is killed.
"""
import argparse, os, re, shlex, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "mutants"))
import mutants as LIST  # noqa: E402

PY = "/usr/bin/python3"
SCRATCH = os.path.join(ROOT, "build", "mutants")
SRC = os.path.join(SCRATCH, "src")
BUILD_TIMEOUT = 900
TEST_TIMEOUT = 900


def log(*a):
    print(*a, flush=True)


def sync_tree():
    """Copy the tracked (and untracked, not ignored) files into SRC; remove stale ones."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    files = [f for f in files if f and os.path.isfile(os.path.join(ROOT, f))]
    os.makedirs(SRC, exist_ok=True)
    for f in files:
        s, d = os.path.join(ROOT, f), os.path.join(SRC, f)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if not os.path.exists(d) or open(s, "rb").read() != open(d, "rb").read():
            shutil.copy2(s, d)
            os.utime(d)  # newer than any object built from an older copy
    models = os.path.join(ROOT, "build", "models")
    dst = os.path.join(SRC, "build", "models")
    os.makedirs(os.path.join(SRC, "build"), exist_ok=True)
    if os.path.isdir(models) and os.listdir(models) and not os.path.exists(dst):
        os.symlink(models, dst)


def units_of(tests):
    return sorted({t[5:] for t in tests if t.startswith("unit:")})


def build(units):
    targets = ["build/xbnserve"] + ["build/tests/" + u for u in units]
    cmd = ["make", "-j2", "-s", "XBN_VERSION=mutants"] + targets
    try:
        p = subprocess.run(cmd, cwd=SRC, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, "build timed out"
    return p.returncode == 0, (p.stdout + p.stderr)[-3000:]


def env():
    e = dict(os.environ)
    e.update(XBN_BIN=os.path.join(SRC, "build/xbnserve"), XBN_MODELS=os.path.join(SRC, "build/models"))
    return e


def run_test(spec):
    """-> ('pass' | 'fail' | 'empty', detail)."""
    kind, arg = spec.split(":", 1)
    if kind == "unit":
        cmd = [os.path.join(SRC, "build/tests", arg)]
    else:
        cmd = [PY, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE"] + shlex.split(arg)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=SRC, env=env(), capture_output=True, text=True, timeout=TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "fail", f"{spec} (timed out after {TEST_TIMEOUT}s)"
    out = p.stdout + p.stderr
    dt = time.time() - t0
    if kind == "unit":
        if p.returncode == 0:
            return "pass", f"{spec} {dt:.0f}s"
        failed = re.findall(r"\[  FAILED  \] (\w+)", out)
        return "fail", f"{spec}:{failed[0] if failed else 'exit %d' % p.returncode}"
    if p.returncode == 0:
        if not re.search(r"\d+ passed", out):
            return "empty", f"{spec}: nothing passed (all skipped?)"
        return "pass", f"{spec} {dt:.0f}s"
    if p.returncode in (4, 5):  # usage error / nothing collected: the selection is stale
        return "empty", f"{spec}: selects no test (pytest exit {p.returncode})"
    failed = re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", out, re.M)
    return "fail", failed[0] if failed else f"{spec} (exit {p.returncode})"


def one(m, baseline_bad):
    path = os.path.join(SRC, m["file"])
    if not os.path.exists(path):
        return "STALE", f"{m['file']} not found"
    text = open(path).read()
    n = text.count(m["orig"])
    if n != 1:
        return "STALE", f"pattern found {n} times in {m['file']}"
    open(path, "w").write(text.replace(m["orig"], m["repl"]))
    try:
        ok, out = build(units_of(m["tests"]))
        if not ok:
            if m["compile"]:
                err = re.findall(r"error: .*", out)
                return "killed", "compiler: " + (err[0][:100] if err else "build failed")
            return "STALE", "did not compile: " + (re.findall(r"error: .*", out) or [out[-200:]])[0][:160]
        if m["compile"]:
            return "SURVIVED", "compiled (meant to be a compile-time catch)"
        for t in m["tests"]:
            if t in baseline_bad:
                return "STALE", f"{t} fails without the mutant"
            st, detail = run_test(t)
            if st == "fail":
                return "killed", detail
            if st == "empty":
                return "STALE", detail
        return "SURVIVED", "passed: " + ", ".join(m["tests"])
    finally:
        open(path, "w").write(text)
        os.utime(path)  # newer than the mutant's objects: the next build recompiles it


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated ids")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    ms = LIST.M
    if a.only:
        want = a.only.split(",")
        ms = [m for m in ms if m["id"] in want]
        missing = set(want) - {m["id"] for m in ms}
        if missing:
            sys.exit("unknown mutant ids: " + ", ".join(sorted(missing)))
    if a.list:
        for m in ms:
            log(f"{m['id']:28} {m['file']:32} {m['why']}")
        return 0
    t_all = time.time()
    log(f"== syncing the tree into {SRC}")
    sync_tree()
    units = sorted({u for m in ms for u in units_of(m["tests"])})
    log("== building the unmutated copy")
    ok, out = build(units)
    if not ok:
        log(out)
        log("the unmutated tree does not build: no mutant can be judged")
        return 2
    if not os.path.isdir(os.path.join(SRC, "build/models")):
        subprocess.run(["make", "models"], cwd=SRC, check=True)
    baseline_bad = set()
    if not a.no_baseline:
        log("== baseline: every named test on the unmutated copy")
        for t in sorted({t for m in ms for t in m["tests"]}):
            st, detail = run_test(t)
            log(f"   {st:5} {detail}")
            if st != "pass":
                baseline_bad.add(t)
    results = []
    for i, m in enumerate(ms, 1):
        t0 = time.time()
        st, detail = one(m, baseline_bad)
        results.append((m, st, detail))
        log(f"[{i}/{len(ms)}] {m['id']:28} {st:8} {detail}  ({time.time() - t0:.0f}s)")
    # the copy is back to the unmutated tree; rebuild so a later run starts clean
    build(units)
    log("\n== mutants: %d, %.0f min" % (len(ms), (time.time() - t_all) / 60))
    log(f"{'id':28} {'file':32} {'result':8} detail")
    for m, st, detail in results:
        log(f"{m['id']:28} {m['file']:32} {st:8} {detail}")
    counts = {s: sum(1 for _, x, _ in results if x == s) for s in ("killed", "SURVIVED", "STALE")}
    log("killed %(killed)d, SURVIVED %(SURVIVED)d, STALE %(STALE)d" % counts)
    return 0 if counts["killed"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
