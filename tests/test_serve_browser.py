"""dt serve in a real browser: Debian's headless Chromium, driven by Playwright against that binary
(nothing is downloaded). Skipped where Chromium or Playwright is missing, except in CI (CI=true),
where `make install` puts them there and a missing one fails."""

import json
import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from decision_transformer.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["hopper-medium-replay", "walker2d-medium-replay"]      # both fall early: short episodes
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# without the background-networking flags Chromium keeps calling hosts this machine cannot reach
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need(ok: bool, what: str):
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing: make install puts it there for the browser tests")
        pytest.skip(f"{what} is missing (make install installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("gradio")
    os.environ["DT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    from decision_transformer.serve.app import build_app
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app([ROOT / "models" / m for m in MODELS], workers=2, sweep_points=2, sweep_episodes=1)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True)
    yield f"http://127.0.0.1:{port}/", demo
    demo.close()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "Playwright (pip install playwright)")
    _need(os.path.exists(CHROMIUM), "Chromium (Debian package chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """Opens pages on the server; each is closed after the test (a looping video keeps a page busy)."""
    contexts = []

    def open_(url):
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(url, wait_until="networkidle", timeout=90_000)
        return page
    yield open_
    for ctx in contexts:
        ctx.close()


def _pick(page, name):
    page.locator("#model input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("n => document.querySelector('#about').innerText.includes(n)", arg=name, timeout=30_000)


def _reported(page, timeout=120_000):
    """The return and target the page reports, once the result has arrived."""
    page.wait_for_function("() => document.querySelector('#result').innerText.includes('Return ')", timeout=timeout)
    head = page.locator("#result h3").inner_text()             # "Return 123.45 at target 1500"
    words = head.split()
    return float(words[1]), float(words[4])


def _dt_eval(page, model, target, seed, tmp_path) -> float:
    """dt eval's return for the same model, target and seed, on the backend the page says it used."""
    backend = "onnxruntime" if "`onnxruntime` backend" in page.locator("#result").inner_html() or \
        "onnxruntime backend" in page.locator("#result").inner_text() else "torch"
    out = tmp_path / f"eval-{model}-{target}-{seed}.json"
    assert main(["eval", str(ROOT / "models" / model), "--target-return", str(target), "--episodes", "1",
                 "--num-envs", "1", "--seed", str(seed), "--backend", backend, "--json", str(out)]) == 0
    return json.loads(out.read_text())["results"][0]["return_mean"]


def test_pick_a_model_move_the_slider_run_and_the_video_plays(server, open_page, tmp_path):
    url, _ = server
    page = open_page(url)
    _pick(page, "walker2d-medium-replay")
    slider = page.locator("#target input[type=range]")
    before = float(slider.input_value())
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowLeft")                        # moves the slider down by 5 steps
    moved = float(page.locator("#target input[type=number]").input_value())
    assert moved < before
    page.locator("#seed input").fill("9")                        # env seed 9: the walker falls after ~130 steps
    page.locator("#run").click()
    got, target = _reported(page)
    assert target == pytest.approx(moved)
    assert got == pytest.approx(_dt_eval(page, "walker2d-medium-replay", moved, 9, tmp_path), abs=0.01)   # the page rounds
    page.wait_for_function("() => { const v = document.querySelector('#video video');"
                           " return v && v.readyState >= 3 && !v.paused && v.currentTime > 0.2; }", timeout=30_000)
    assert page.evaluate("() => document.querySelector('#video video').videoWidth") > 0
    shots = ROOT / "docs" / "figures"
    if os.environ.get("DT_SCREENSHOT"):                        # docs/figures/serve.png: DT_SCREENSHOT=1 pytest -k slider
        page.screenshot(path=str(shots / "serve.png"), full_page=True)


def test_two_pages_at_once_each_get_their_own_episode(server, open_page, tmp_path):
    url, _ = server
    a, b = open_page(url), open_page(url)
    for page, target, seed in ((a, 2000, 1), (b, 500, 2)):
        page.locator("#target input[type=number]").fill(str(target))
        page.locator("#target input[type=number]").press("Enter")
        page.locator("#seed input").fill(str(seed))
    a.locator("#run").click()
    b.locator("#run").click()                                     # both in flight: two workers
    (ga, ta), (gb, tb) = _reported(a), _reported(b)
    assert (ta, tb) == (2000, 500)
    assert ga == pytest.approx(_dt_eval(a, "hopper-medium-replay", 2000, 1, tmp_path), abs=0.01)
    assert gb == pytest.approx(_dt_eval(b, "hopper-medium-replay", 500, 2, tmp_path), abs=0.01)
    assert "env seed 1" in a.locator("#result").inner_text() and "env seed 2" in b.locator("#result").inner_text()


def test_a_failing_renderer_is_a_message_in_the_page_and_the_server_goes_on(server, open_page, monkeypatch):
    """No EGL: the renderer fails where the episode starts rendering; the page says what to install."""
    import decision_transformer.evaluation.video as video
    url, _ = server

    def no_egl(env):
        raise RuntimeError("Cannot initialize a EGL device display")
    monkeypatch.setattr(video, "_follow_body", no_egl)
    page = open_page(url)
    page.locator("#run").click()
    toast = page.get_by_text("offscreen rendering failed")
    toast.first.wait_for(state="visible", timeout=60_000)
    body = page.locator("body").inner_text()
    assert "libegl1" in body and "Traceback" not in body
    monkeypatch.undo()
    page.locator("#run").click()                                 # the same page, again: it runs
    got, _ = _reported(page)
    assert got == got                                            # a number: the server still serves


def test_bad_api_requests_are_one_message_and_files_outside_are_refused(server):
    from gradio_client import Client
    url, demo = server
    client = Client(url, verbose=False)
    for args, msg in ((("nope", 100, 0), "nope is not in the list of choices"), (("hopper-medium-replay", -1e9, 0),
                      "less than minimum value"), (("hopper-medium-replay", 1e9, 0), "greater than maximum value")):
        # Gradio's components check these first; catalog.check_request is the second line (test_serve)
        with pytest.raises(Exception, match=msg):
            client.predict(*args, api_name="/on_run")
    out = client.predict("hopper-medium-replay", 1000, 0, api_name="/on_run")   # still serving
    assert "Return " in out[1]
    for path in ("/etc/passwd", str(ROOT / "models" / "hopper-medium-replay" / "config.json")):
        try:
            code = urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10).status
        except urllib.error.HTTPError as e:
            code = e.code
        assert code in (403, 404), (path, code)


def test_the_server_binds_to_loopback_by_default():
    from decision_transformer.cli import parse
    _, options = parse(["serve"])
    assert options().host == "127.0.0.1"
