"""tests/integration/test_page_browser.py - the try-it page in a real browser: headless
Chromium (Debian chromium + chromium-driver) driven by python3-selenium. Open the page, pick
a model, upload an image made here, wait for the answer, and check that the top label shown
is the API's own answer for the same file; screenshots at desktop and phone width go to
build/ (page-desktop.png, page-phone.png). scripts/deps.sh test installs the browser; where
it is missing the tests are skipped with that reason. Env: XBN_BIN, XBN_MODELS."""
import io
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

from xbn import SMALL, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium not installed")
if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
    pytest.skip("chromium / chromium-driver not installed (scripts/deps.sh test)",
                allow_module_level=True)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = os.environ.get("XBN_SHOTS", "build")


@pytest.fixture(scope="module")
def srv():
    # Two names for one small model: the test must pick the second, not the default.
    s = Server("--model", "first=" + SMALL, "--model", "second=" + SMALL)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="xbn-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # No network here: these keep Chromium from reaching out (and failing slowly).
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def make_image(path):
    """A picture with some structure (gradients and a disc), JPEG."""
    y, x = np.mgrid[0:180, 0:240]
    rgb = np.stack([x * 255 // 239, y * 255 // 179, 255 - x * 255 // 239], -1)
    rgb[(x - 150) ** 2 + (y - 80) ** 2 < 45 ** 2] = (250, 200, 30)
    img = Image.fromarray(rgb.astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def api_answer(srv, model, data):
    st, _, body = srv.request("POST", f"/v1/models/{model}:predict?top_k=5", data,
                              {"Content-Type": "image/jpeg"})
    assert st == 200, body
    return json.loads(body)


def console_errors(drv):
    try:
        return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    except Exception:  # not every driver keeps the log
        return []


def run_page(srv, drv, img_path):
    """Open the page, pick `second`, upload the file, wait for the answer: the result node."""
    drv.get(f"http://127.0.0.1:{srv.port}/")
    wait = WebDriverWait(drv, 60)
    wait.until(lambda d: not d.find_element(By.ID, "model").get_property("disabled"))
    Select(drv.find_element(By.ID, "model")).select_by_value("second")
    drv.find_element(By.ID, "file").send_keys(str(img_path))
    wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-state")
               in ("done", "error"))
    res = drv.find_element(By.ID, "result")
    assert res.get_attribute("data-state") == "done", drv.find_element(By.ID, "status").text
    return res


def test_page_classifies_like_the_api(srv, browser, tmp_path):
    img_path = tmp_path / "scene.jpg"
    data = make_image(img_path)
    want = api_answer(srv, "second", data)
    top = want["predictions"][0]
    assert want["untrained"] is True and len(top) == 5

    run_page(srv, browser, img_path)
    items = browser.find_elements(By.CSS_SELECTOR, "#preds li")
    labels = [li.find_element(By.CLASS_NAME, "label").text for li in items]
    assert labels[0] == top[0]["label"]
    assert labels == [p["label"] for p in top]
    assert [int(li.get_attribute("data-index")) for li in items] == [p["index"] for p in top]
    score = items[0].find_element(By.CLASS_NAME, "score").text
    assert score == f"{top[0]['score'] * 100:.2f}%"
    # the bars are drawn to scale: the first is the widest, none is empty
    widths = [li.find_element(By.CLASS_NAME, "fill").size["width"] for li in items]
    assert widths == sorted(widths, reverse=True) and widths[-1] > 0
    assert browser.find_element(By.ID, "status").text == "second"
    assert browser.find_element(By.ID, "result-badge").is_displayed()  # untrained
    assert browser.find_element(By.ID, "model-badge").is_displayed()
    assert browser.find_element(By.ID, "latency").text.endswith(" ms")
    # the preview shows the picture itself
    assert browser.execute_script(
        "const i = document.getElementById('preview'); return i.complete && i.naturalWidth") == 240
    curl = browser.find_element(By.ID, "curl").text
    assert f"http://127.0.0.1:{srv.port}/v1/models/second:predict?top_k=5" in curl
    assert "--data-binary @'scene.jpg'" in curl and "Content-Type: image/jpeg" in curl
    assert console_errors(browser) == []  # no CSP violation, no failed load
    os.makedirs(SHOTS, exist_ok=True)
    assert browser.save_screenshot(os.path.join(SHOTS, "page-desktop.png"))


def test_page_at_phone_width(srv, browser, tmp_path):
    img_path = tmp_path / "scene.jpg"
    make_image(img_path)
    browser.set_window_size(390, 844)
    try:
        run_page(srv, browser, img_path)
        # nothing overflows sideways: the page fits the phone's width
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        res = browser.find_element(By.ID, "result")
        assert res.size["width"] <= browser.execute_script("return window.innerWidth")
        # one column: the predictions sit below the preview, not beside it
        prev = browser.find_element(By.ID, "preview").rect
        preds = browser.find_element(By.ID, "preds").rect
        assert preds["y"] >= prev["y"] + prev["height"]
        browser.execute_script("document.getElementById('result').scrollIntoView()")
        assert browser.save_screenshot(os.path.join(SHOTS, "page-phone.png"))
    finally:
        browser.set_window_size(1280, 900)
