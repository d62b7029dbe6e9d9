"""End to end: the demo app in headless Debian Chromium, driven by Playwright.

The test starts `python -m hrpred app` itself on a free localhost port with a tiny random
bundle, uploads a GPX it wrote, waits for the plot and checks that the numbers on the page
equal `hrpred.serve.predict.predict_activity` on the same file. It never downloads a browser:
it uses /usr/bin/chromium (`.ci/run` installs Debian's package) or skips.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_helpers import make_tiny_bundle, write_gpx_fixture

CHROMIUM = Path(os.environ.get("HRPRED_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
REPO = Path(__file__).resolve().parents[1]
SERVER_START_S = 45.0  # python + torch + gradio import, then the first page
PREDICT_WAIT_MS = 30_000  # upload + read + predict + plot on a slow CI machine
# Gradio's page template itself asks for this script (async, optional); nothing else may leave.
ALLOWED_EXTERNAL = ("https://cdnjs.cloudflare.com/ajax/libs/iframe-resizer/",)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does) to run it",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
predict = pytest.importorskip(
    "hrpred.serve.predict", reason="hrpred.serve.predict not available yet"
)
userfiles = pytest.importorskip("hrpred.io.userfiles", reason="hrpred.io.userfiles missing")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"app did not answer on {url} within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: only the app and its children
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("app_browser")


@pytest.fixture(scope="module")
def bundle_dir(workdir: Path) -> Path:
    return make_tiny_bundle(workdir / "bundle")


@pytest.fixture(scope="module")
def server(bundle_dir: Path, workdir: Path) -> Iterator[str]:
    port = _free_port()
    log = workdir / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # the `hrpred app` command itself, as a user starts it
    cmd = [sys.executable, "-m", "hrpred", "app", "--bundle", str(bundle_dir), "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_server(url, proc, log, SERVER_START_S)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    """Depends on `server` so that it closes first: the app then stops without open clients."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser, server: str) -> Iterator[tuple[object, list[str]]]:
    """A fresh page on the app; requests that would leave localhost are aborted and listed."""
    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(PREDICT_WAIT_MS)
    external: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    pg = context.new_page()
    pg.route("**/*", route)
    pg.goto(server, wait_until="domcontentloaded", timeout=20_000)
    pg.wait_for_selector("#workout-file input[type=file]", state="attached", timeout=20_000)
    try:
        yield pg, external
    finally:
        context.close()


def _shown(pg, key: str) -> str:
    from hrpred.serve.app import IDS

    return pg.locator(f"#{IDS[key]} textarea, #{IDS[key]} input").first.input_value().strip()


def _wait_for_prediction(pg, file_name: str) -> None:
    """The status line names the file once every output of that run has been written."""
    pg.wait_for_function(
        "name => (document.querySelector('#status')?.innerText || '').includes(name)",
        arg=f"from {file_name}",
        timeout=PREDICT_WAIT_MS,
    )
    pg.wait_for_selector("#hr-plot img", state="visible", timeout=PREDICT_WAIT_MS)


def test_upload_shows_the_numbers_predict_computes(page, bundle_dir: Path, workdir: Path):
    pg, external = page
    gpx = write_gpx_fixture(workdir / "fixture_run.gpx", minutes=20)
    start = time.monotonic()
    pg.locator("#workout-file input[type=file]").set_input_files(str(gpx))
    _wait_for_prediction(pg, gpx.name)
    elapsed = time.monotonic() - start

    ref = predict.predict_activity(predict.load_bundle(bundle_dir), userfiles.read_activity(gpx))
    for key, ref_key in (("avg", "avg_hr"), ("max", "max_hr"), ("mae", "mae")):
        shown = float(_shown(pg, key))
        assert abs(shown - ref.summary[ref_key]) <= 0.05 + 1e-9, (key, shown, ref.summary)
    assert _shown(pg, "drift") == f"{ref.summary['drift_bpm']:.1f}"
    assert not pg.locator("#error").is_visible()
    # a bundle without a calibrated band: no band boxes, and the status says so
    assert not pg.locator("#pred-avg-band").is_visible()
    assert "No uncertainty band" in pg.locator("#status").inner_text()
    img = pg.locator("#hr-plot img").first
    assert img.get_attribute("src").startswith("data:image/png")
    assert img.evaluate("el => el.naturalWidth") > 300
    zones_text = pg.locator("#zones").inner_text()
    assert all(z in zones_text for z in ("Z1", "Z2", "Z3", "Z4", "Z5"))
    assert ref.summary["zone_basis"] in zones_text

    # the CSV download holds the same predictions
    with pg.expect_download(timeout=10_000) as info:
        pg.locator("#download-csv a").first.click()
    with open(info.value.path(), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert info.value.suggested_filename == "fixture_run_hr_pred.csv"
    assert len(rows) == len(ref.frame)
    got = [float(r["hr_pred"]) for r in rows]
    assert max(abs(a - b) for a, b in zip(got, ref.frame["hr_pred"], strict=True)) < 1e-6

    # a max HR typed in the page reaches predict_activity: the zones are recomputed from it
    pg.locator("#in-max-hr input").fill("172")
    pg.locator("#predict-btn").click()
    ref172 = predict.predict_activity(
        predict.load_bundle(bundle_dir), userfiles.read_activity(gpx), max_hr=172.0
    )
    pg.wait_for_function(
        "basis => (document.querySelector('#zones')?.innerText || '').includes(basis)",
        arg=ref172.summary["zone_basis"],
        timeout=PREDICT_WAIT_MS,
    )
    for zone in ("Z1", "Z2", "Z3", "Z4", "Z5"):
        # Gradio draws a hidden sizing table (widest cell of each column) before the data
        # table: the data row is the last one naming the zone.
        minutes = pg.locator("#zones tr", has_text=zone).last.inner_text().split()[1]
        assert float(minutes) == pytest.approx(ref172.summary["zones"][zone] / 60, abs=0.051)
    assert ref172.summary["zones"] != ref.summary["zones"]  # the check above can tell them apart

    assert all(u.startswith(ALLOWED_EXTERNAL) for u in external), external
    assert elapsed < PREDICT_WAIT_MS / 1000


def test_sample_picker_predicts_a_generated_workout(page, bundle_dir: Path, workdir: Path):
    from hrpred.serve.demo_samples import sample_names, write_sample_gpx

    pg, _ = page
    name = sample_names()[1]
    pg.locator("#sample-picker input").click()
    pg.get_by_role("option", name=name).click()
    expected = write_sample_gpx(name, workdir)
    _wait_for_prediction(pg, expected.name)
    ref = predict.predict_activity(
        predict.load_bundle(bundle_dir), userfiles.read_activity(expected)
    )
    assert abs(float(_shown(pg, "avg")) - ref.summary["avg_hr"]) <= 0.05 + 1e-9
    assert _shown(pg, "mae") != "n/a"  # samples carry a synthetic recorded HR


def test_bad_file_shows_a_one_line_error(page, workdir: Path):
    pg, _ = page
    bad = workdir / "broken.gpx"
    bad.write_text("<gpx><trk><trkseg><trkpt lat='1' lon='2'>", encoding="utf-8")
    pg.locator("#workout-file input[type=file]").set_input_files(str(bad))
    pg.wait_for_selector("#error", state="visible", timeout=PREDICT_WAIT_MS)
    text = pg.locator("#error").inner_text().strip()
    assert text.startswith("Error: broken.gpx")
    assert "\n" not in text and "Traceback" not in text
    assert _shown(pg, "avg") == "n/a"
