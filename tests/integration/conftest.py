"""conftest.py - the fixtures the integration tests share: `srv`, one small model served
for a whole test file, and `start_server`, a daemon with the test's own flags that is
stopped (and must exit 0) when the test ends. The helpers they use are in xbn.py."""
import pytest

from xbn import SMALL, Server


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", "small=" + SMALL, "--max-batch-size", "8", "--max-queue-delay-us",
               "2000", "--max-body-bytes", "16000000", "--max-images-per-request", "16")
    yield s
    assert s.stop() == 0


@pytest.fixture
def start_server():
    started = []

    def start(*args, env=None):
        s = Server(*args, env=env)
        started.append(s)
        return s

    yield start
    for s in started:
        assert s.stop() == 0
