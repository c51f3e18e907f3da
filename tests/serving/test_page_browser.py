"""The page at ``/`` in headless Chromium against a real server: upload an image, see boxes
drawn, move the stage slider through the proposals and every stage. The screenshot is kept in
``test-artifacts/`` at the repository root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import REPO, encoded_image

CHROMIUM = Path("/usr/bin/chromium")
# The machines are offline: stop Chromium from reaching out (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no browser at {CHROMIUM}: `bash scripts/setup.sh --browser` installs Chromium",
    ),
]


def test_page_draws_detections_and_every_stage(served: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    image = tmp_path / "street.png"
    image.write_bytes(encoded_image(320, 240, seed=3))
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "serve_page.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(served + "/")
            page.wait_for_function("document.getElementById('stage-slider').max === '2'")
            # Where the model runs, as /v1/model reports it (engine, device and precision).
            assert "2 stages, fp32 on cpu (torch), sparsercnn" in page.inner_text("#model-info")
            page.set_input_files("#file-input", str(image))
            canvas = page.locator("#canvas")
            page.wait_for_function("document.getElementById('canvas').dataset.stage === '2'")
            assert "street.png: 320x240" in page.inner_text("#status")

            def drawn(stage: int, score: float) -> int:
                page.eval_on_selector("#score-slider", f"s => {{ s.value = '{score}'; }}")
                page.eval_on_selector(
                    "#stage-slider",
                    f"s => {{ s.value = '{stage}'; s.dispatchEvent(new Event('input')); }}",
                )
                assert canvas.get_attribute("data-stage") == str(stage)
                return int(canvas.get_attribute("data-drawn-boxes") or -1)

            # The untrained tiny model scores low: threshold 0 shows every detection.
            assert drawn(0, 0.0) == 16  # the learned proposals
            counts = [drawn(stage, 0.0) for stage in (1, 2)]
            assert all(count > 0 for count in counts), counts
            assert drawn(2, 1.0) == 0  # nothing scores 1.0
            assert drawn(2, 0.0) == counts[1]
            assert page.locator("#detection-list li").count() == counts[1]
            # Boxes are really painted: the canvas is not just the image (labels are white
            # on a class colour, proposals white), so its pixels differ between stages.
            stage_two = canvas.screenshot()
            drawn(0, 0.0)
            assert canvas.screenshot() != stage_two
            drawn(2, 0.0)
            page.screenshot(path=str(screenshot), full_page=True)

            # A TIFF: the server reads it, Chromium cannot show it. Its own boxes are drawn
            # on a blank canvas of its size, never the previous image's.
            tiff = tmp_path / "scan.tiff"
            tiff.write_bytes(encoded_image(200, 150, seed=4, image_format="TIFF"))
            page.set_input_files("#file-input", str(tiff))
            page.wait_for_function("document.getElementById('status').textContent.includes('scan')")
            page.wait_for_function("document.getElementById('canvas').dataset.stage === '2'")
            status = page.inner_text("#status")
            assert "scan.tiff: 200x150" in status and "cannot display scan.tiff" in status
            assert canvas.evaluate("c => [c.width, c.height]") == [200, 150]
            assert drawn(0, 0.0) == 16

            # An error answer is shown with its status and the server's message, and no boxes
            # stay from the image before; a proxy's HTML error page is shown as text.
            not_an_image = tmp_path / "notes.png"
            not_an_image.write_bytes(b"these are notes, not pixels")
            page.set_input_files("#file-input", str(not_an_image))
            page.wait_for_function("document.getElementById('status').dataset.error === '1'")
            status = page.inner_text("#status")
            assert "400" in status and "images[0] (notes.png) is not an image file" in status
            assert canvas.get_attribute("data-drawn-boxes") == "0"
            page.route(
                "**/v1/stages",
                lambda route: route.fulfill(
                    status=502, body="<html>Bad Gateway</html>", content_type="text/html"
                ),
            )
            page.set_input_files("#file-input", str(image))
            page.wait_for_function("document.getElementById('status').textContent.includes('502')")
            assert "<html>Bad Gateway</html>" in page.inner_text("#status")
            page.unroute("**/v1/stages")

            # Two files chosen in turn: the first one's late answer does not replace the
            # second's boxes.
            held: list[Any] = []

            def hold_the_first(route: Any) -> None:
                if held:
                    route.continue_()
                else:
                    held.append(route)

            page.route("**/v1/stages", hold_the_first)
            other = tmp_path / "other.png"  # a file input fires no change for the same file
            other.write_bytes(image.read_bytes())
            page.set_input_files("#file-input", str(other))
            for _ in range(200):  # until the page has sent it
                if held:
                    break
                page.wait_for_timeout(50)
            page.set_input_files("#file-input", str(tiff))
            shown = "document.getElementById('status').textContent.includes('scan.tiff: 200x150')"
            page.wait_for_function(shown)
            assert len(held) == 1
            held[0].continue_()
            page.wait_for_timeout(1500)  # the first file's answer arrives, and is dropped
            assert "scan.tiff: 200x150" in page.inner_text("#status")
            assert canvas.evaluate("c => [c.width, c.height]") == [200, 150]
            assert not errors, errors
        finally:
            browser.close()
    print(f"screenshot of the page: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert os.access(screenshot, os.R_OK)


def test_page_names_both_engines_when_the_stage_view_runs_elsewhere(served: str) -> None:
    """``serve --onnx X --device cuda``: the page said "fp32 on cuda" while full-stage
    detections ran X on the CPU. The answer of such a server is made from this one's."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def split(route: Any) -> None:
                model = route.fetch().json()
                model.update(engine="onnx", device="cpu")
                model["stage_limited"]["device"] = "cuda:0"
                route.fulfill(json=model)

            page.route("**/v1/model", split)
            page.goto(served + "/")
            page.wait_for_function("document.getElementById('stage-slider').max === '2'")
            assert (
                "2 stages, stage view fp32 on cuda:0 (torch), full-stage detections fp32 on cpu "
                "(onnx), sparsercnn"
            ) in page.inner_text("#model-info")
        finally:
            browser.close()


def test_api_docs_render_with_no_network(served: str) -> None:
    """Every request to another host is refused, as on the offline machines: the API docs still
    render the endpoints (FastAPI's own pages fetch their scripts from a CDN)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            outside: list[str] = []

            def refuse_other_hosts(route: Any) -> None:
                if route.request.url.startswith(served):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", refuse_other_hosts)
            page.goto(served + "/docs")
            page.wait_for_selector(".opblock", timeout=20_000)
            assert "/v1/detect" in page.inner_text("body")
            assert not outside, outside
        finally:
            browser.close()
