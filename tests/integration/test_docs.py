"""tests/integration/test_docs.py - the examples of README.md and docs/api.md run as written.

Every fenced ```sh, ```python and ```js block of the two documents is run against a daemon
started with config/xbnserve.json's models (scripts/default-models.sh creates them when
missing) on a free port; only host:port (127.0.0.1:8080) is rewritten. A block preceded by
the line `<!-- docs-test: skip -->` is not run (`make run`, converting checkpoints one
does not have). In a sh block whose lines start with `$ `, those are the commands and the
other lines their printed output; otherwise every line is a command (a command goes on
while a line ends with a backslash or a quote is open). Each command must exit 0 and every
HTTP answer curl receives must be 2xx (a curlrc in CURL_HOME makes curl report the status
of each transfer on stderr). Python blocks run with /usr/bin/python3, JS blocks with node as
an ES module (node is a test dependency: scripts/deps.sh test); both must exit 0 (the
snippets raise on a non-2xx answer). The client examples must stay: at least one Python and
one JS block per body form (EXPECTED_BLOCKS), none of them skipped.
Env: XBN_BIN (binary)."""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from xbn import BIN, Server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md", "docs/api.md"]
SKIP = "<!-- docs-test: skip -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
STATUS = re.compile(r"^XBN-HTTP (\d{3})$", re.M)


def blocks(doc):
    """(language, code, skipped, line) of each fenced block of doc."""
    text = open(os.path.join(REPO, doc), encoding="utf-8").read()
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        out.append((m.group(1), m.group(2), before == SKIP, text.count("\n", 0, m.start()) + 1))
    return out


def complete(cmd):
    if cmd.endswith("\\"):
        return False
    try:
        shlex.split(cmd, comments=True)
    except ValueError:  # a quote still open
        return False
    return True


def commands(code):
    """The shell commands of a sh block (see the module's docstring)."""
    lines = code.split("\n")
    prompted = any(ln.startswith("$ ") for ln in lines)
    out, cur = [], None
    for ln in lines:
        if cur is not None:
            cur += "\n" + ln
        elif prompted and ln.startswith("$ "):
            cur = ln[2:]
        elif not prompted and ln.strip():
            cur = ln
        else:
            continue  # output, or a blank line
        if complete(cur):
            out.append(cur)
            cur = None
    assert cur is None, f"unterminated command: {cur!r}"
    return out


def test_block_parsing():
    code = "$ curl -s \\\n   http://x/\n{\"a\": 1}\n$ echo 'a\nb'\nout\n"
    assert commands(code) == ["curl -s \\\n   http://x/", "echo 'a\nb'"]
    assert commands("a=1\ncurl -d \"{\n}\" u\n\n# note\n") == ["a=1", "curl -d \"{\n}\" u", "# note"]


def all_blocks():
    return [(doc, *b) for doc in DOCS for b in blocks(doc)]


# docs/api.md's client examples: one block per body form (raw bytes, multipart, V1 JSON, V2
# FP32, V2 BYTES, V2 binary extension) in each language.
EXPECTED_BLOCKS = {"python": 6, "js": 6}


def test_documents_have_runnable_examples():
    langs = [(lang, skipped) for _, lang, _, skipped, _ in all_blocks()]
    assert ("sh", False) in langs
    # Only a few blocks are exempt, and each on purpose; no client example is.
    assert sum(1 for lang, skipped in langs if skipped) <= 3
    for lang, n in EXPECTED_BLOCKS.items():
        assert sum(1 for x in langs if x == (lang, False)) >= n, (lang, langs)
        assert (lang, True) not in langs, lang


@pytest.fixture(scope="module")
def daemon():
    subprocess.run([os.path.join(REPO, "scripts/default-models.sh")], check=True, timeout=600)
    cwd = os.getcwd()
    os.chdir(REPO)  # the config's model paths are relative to the working directory
    try:
        srv = Server("--config", "config/xbnserve.json")
    finally:
        os.chdir(cwd)
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch directory the examples run in: the repository's docs/ and models/, and
    build/xbnserve (the binary under test), so files the examples write land here."""
    d = tmp_path_factory.mktemp("docs")
    for name in ("docs", "models", "config"):
        os.symlink(os.path.join(REPO, name), d / name)
    (d / "build").mkdir()
    os.symlink(os.path.abspath(BIN), d / "build" / "xbnserve")
    (d / ".curlrc").write_text('write-out = "%{stderr}XBN-HTTP %{http_code}\\n"\n')
    return d


def rewrite(code, port):
    return re.sub(r"(127\.0\.0\.1|localhost):8080", f"127.0.0.1:{port}", code)


def env_for(workdir):
    e = {k: v for k, v in os.environ.items() if not k.startswith("XBNSERVE_")}
    e["CURL_HOME"] = str(workdir)
    return e


CASES = [pytest.param(doc, lang, code, id=f"{doc}:{line}")
         for doc, lang, code, skipped, line in all_blocks()
         if not skipped and lang in ("sh", "python", "js")]


@pytest.mark.parametrize("doc,lang,code", CASES)
def test_example_runs(daemon, workdir, doc, lang, code):
    code = rewrite(code, daemon.port)
    if lang == "sh":
        # One shell per block: a block's commands may share variables.
        cmds = commands(code)
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(cmds)], cwd=workdir,
                           env=env_for(workdir), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{code}\n{r.stdout[:2000]}\n{r.stderr}"
        codes = STATUS.findall(r.stderr)
        assert len(codes) == sum(c.count("curl ") for c in cmds), f"{code}\n{r.stderr}"
        assert all(c.startswith("2") for c in codes), f"{code}\nHTTP {codes}\n{r.stdout[:2000]}"
        return
    if lang == "python":
        argv = ["/usr/bin/python3", "-c", code]
    else:
        node = shutil.which("node")
        assert node, "node is not installed (scripts/deps.sh test): the JS examples must run"
        argv = [node, "--input-type=module", "-e", code]
    r = subprocess.run(argv, cwd=workdir, env=env_for(workdir), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"{code}\n{r.stdout}\n{r.stderr}"
