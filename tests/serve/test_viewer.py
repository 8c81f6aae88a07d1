"""The page in a real headless Chromium (Debian chromium + chromium-driver, driven by Selenium): token, upload of a
DICOM series, the result on screen (slices, presets, report linked to findings), a finding toggled, screenshots."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.serve.conftest import ServerProcess

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian packages chromium and chromium-driver")
pytest.importorskip("selenium")


@pytest.fixture()
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100",
              "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _wait(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _box_pixels(drv) -> int:
    """Pixels of the canvas's current slice drawn in a finding colour (red box of finding 1)."""
    return drv.execute_script("""
        const c = document.getElementById('view'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] < 120 && d[i+2] < 120) n++; return n;""")


def _analyse_in_page(drv, url: str, token: str, paths) -> None:
    """Open the page, save the token, upload ``paths`` and wait until the result is on screen."""
    from selenium.webdriver.common.by import By

    drv.get(url + "/")
    _wait(lambda: drv.find_element(By.ID, "token-card").is_displayed(), 20, "the token field")
    drv.find_element(By.ID, "token").send_keys(token)
    drv.find_element(By.ID, "token-save").click()
    drv.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    _wait(lambda: drv.find_element(By.ID, "submit").is_enabled(), 10, "the Analyse button")
    drv.find_element(By.ID, "submit").click()
    _wait(lambda: drv.find_element(By.TAG_NAME, "body").get_attribute("data-rendered"), 240, "the result")


def test_upload_result_toggle_and_screenshot(tmp_path, browser):
    from selenium.webdriver.common.by import By

    from radscribe.cli import main
    from radscribe.data.phantom import make_phantom, write_dicom_series

    work = tmp_path / "work"
    assert main(["token", "create", "--name", "browser", "--work-dir", str(work)]) == 0
    token = _last_token
    ph = make_phantom(0, shape=(24, 128, 128), n_nodules=1, spacing=(5.0, 2.8, 2.8))
    files = write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, tmp_path / "series", seed=0)
    shots = Path(os.environ.get("RADSCRIBE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(work, "--workers", "1").wait_ready()
    try:
        drv = browser
        _analyse_in_page(drv, server.url, token, files)
        assert drv.find_element(By.ID, "job-status").text == "done"
        assert "nodule" in drv.find_element(By.ID, "findings-table").text
        assert int(drv.find_element(By.ID, "slice").get_attribute("max")) == 23  # every slice of the series
        presets = [b.text for b in drv.find_elements(By.CSS_SELECTOR, "#presets button")]
        assert presets[:3] == ["lung", "mediastinum", "bone"]
        linked = drv.find_elements(By.CSS_SELECTOR, ".sentence.linked")
        assert linked, "no report sentence is linked to a finding"
        linked[0].click()  # jumps to the finding's slice and highlights its row
        _wait(lambda: drv.find_elements(By.CSS_SELECTOR, "#findings-table tr.sel"), 5, "the selected finding")
        before = _box_pixels(drv)
        assert before > 20, before
        drv.execute_script("document.getElementById('result-card').scrollIntoView()")
        drv.save_screenshot(str(shots / "viewer-result.png"))
        drv.find_element(By.ID, "toggle-0").click()  # the finding's box off
        _wait(lambda: _box_pixels(drv) < before / 4, 5, "the box to disappear")
        drv.find_element(By.CSS_SELECTOR, "#presets button[data-preset=bone]").click()
        drv.save_screenshot(str(shots / "viewer-toggled.png"))
        for name in ("viewer-result.png", "viewer-toggled.png"):
            assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (shots / name).stat().st_size > 20_000
        assert [e.text for e in drv.find_elements(By.CSS_SELECTOR, "#links a")][:2] == ["report.md", "findings.json"]
        logs = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert logs == [], logs  # no script error, no blocked request
    finally:
        server.stop()


def _warm_pixels(drv) -> int:
    """Canvas pixels much redder than blue: the heatmap's warm ramp (and any red box)."""
    return drv.execute_script("""
        const c = document.getElementById('view'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] - d[i+2] > 30) n++; return n;""")


def test_heatmap_layer_toggles_on_a_radiograph(tmp_path, browser):
    """A 2D study: the classifier's Grad-CAM is written as a layer file, sent strided to the page and blended in
    when its toggle is switched on; off again, the image is as before."""
    from selenium.webdriver.common.by import By

    from radscribe.cli import main

    sample = Path(__file__).resolve().parents[2] / "examples" / "cxr_pneumonia_person100_bacteria_475.jpeg"
    work = tmp_path / "work"
    assert main(["token", "create", "--name", "browser", "--work-dir", str(work)]) == 0
    token = _last_token
    server = ServerProcess(work, "--workers", "1").wait_ready()
    try:
        drv = browser
        _analyse_in_page(drv, server.url, token, [sample])
        assert "pneumonia" in drv.find_element(By.ID, "findings-table").text
        toggle = _wait(lambda: drv.find_elements(By.ID, "toggle-heatmap-0"), 10, "the heatmap toggle")[0]
        assert not toggle.is_selected()  # heatmaps start off: they hide the anatomy
        before = _warm_pixels(drv)
        toggle.click()
        _wait(lambda: _warm_pixels(drv) > before + 1500, 5, "the heatmap to be drawn")
        drv.save_screenshot(str(tmp_path / "viewer-heatmap.png"))
        toggle.click()
        _wait(lambda: _warm_pixels(drv) == before, 5, "the heatmap to go")
        logs = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert logs == [], logs
    finally:
        server.stop()


_last_token = ""


@pytest.fixture(autouse=True)
def _capture_token(capsys, monkeypatch):
    """``radscribe token create`` prints the token on stdout: keep it for the test."""
    import radscribe.serve.auth as auth

    real = auth.TokenStore.create

    def create(self, name, **kw):
        global _last_token
        _last_token = real(self, name, **kw)
        return _last_token

    monkeypatch.setattr(auth.TokenStore, "create", create)
