"""test_check_deps.py - tools/check_deps.sh (part of `make lint`) passes on the tree and fails,
naming the file and the line, when one forbidden include is added to a copy of it: a layer
reaching up, a private engine header used outside the engine, a bare include, or an outside
library in the wrong layer."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "check_deps.sh"


def check(root):
    return subprocess.run(["bash", str(TOOL), str(root)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def tree(tmp_path):
    """A copy of the C sources, as check_deps.sh reads them."""
    for d in ("engine", "image", "server", "cli"):
        shutil.copytree(ROOT / d, tmp_path / d)
    return tmp_path


def test_the_tree_follows_the_rule():
    r = check(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "check-deps: every include follows the rule"


RULE = " (docs/architecture.md)"


@pytest.mark.parametrize("path,include,says", [
    ("image/resize.c", '#include "engine/engine.h"',
     'image/ may not include "engine/engine.h"' + RULE),
    ("engine/session.c", '#include "server/server.h"',
     'engine/ may not include "server/server.h"' + RULE),
    ("server/infer.c", '#include "engine/kernels/kernels.h"',
     'server/ may not include "engine/kernels/kernels.h"' + RULE),
    ("server/http.c", '#include "cli/cli.h"', 'server/ may not include "cli/cli.h"' + RULE),
    ("cli/bench.c", '#include "engine/net.h"', 'cli/ may not include "engine/net.h"' + RULE),
    ("server/routes.c", '#include "routes.h"',
     'include "routes.h" is not path-qualified (say "dir/routes.h")'),
    ("engine/model.c", "#include <microhttpd.h>", "<microhttpd.h> belongs to server/ only"),
    ("server/info.c", "#include <png.h>", "<png.h> belongs to image/ only"),
])
def test_one_forbidden_include_fails(tree, path, include, says):
    f = tree / path
    f.write_text(include + "\n" + f.read_text())  # line 1
    r = check(tree)
    assert r.returncode == 1, r.stdout
    assert r.stdout.strip().split("\n") == [f"{path}:1: {says}"], r.stdout
