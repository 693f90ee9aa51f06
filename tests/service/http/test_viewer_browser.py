"""The web viewer in headless Chromium: upload a DICOM, see the slice with boxes and labels drawn,
and each detection's three most likely lesion types with their probabilities."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from service_helpers import API_KEY, live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


def _chromium() -> str:
    if CHROMIUM.is_file():
        return str(CHROMIUM)
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return found


@pytest.mark.browser
def test_upload_shows_slices_with_boxes_and_labels(make_app, synth_series, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    files = [str(path) for path in synth_series[:2]]
    with live_server(make_app()) as base, playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{base}/")
            assert "research use only" in page.text_content("body").lower()

            # without the key the page shows the server's error
            page.set_input_files("#files", files)
            page.click("#detect")
            page.wait_for_selector("body[data-state=error]", timeout=30_000)
            assert "unauthorized" in page.text_content("#status")

            page.fill("#api-key", API_KEY)
            page.fill("#min-score", "0.5")
            with page.expect_response(lambda response: "/v1/detect" in response.url) as answered:
                page.click("#detect")
            answer = answered.value.json()
            page.wait_for_selector("body[data-state=done]", timeout=60_000)
            canvases = page.query_selector_all("canvas.slice-canvas")
            assert len(canvases) == 2
            drawn = page.evaluate(
                """() => [...document.querySelectorAll('canvas.slice-canvas')].map((canvas) => {
                    const context = canvas.getContext('2d');
                    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
                    let coloured = 0;
                    for (let i = 0; i < pixels.length; i += 4) {
                        if (Math.abs(pixels[i] - pixels[i + 1]) > 40 || Math.abs(pixels[i + 1] - pixels[i + 2]) > 40) coloured++;
                    }
                    return {boxes: Number(canvas.dataset.boxes), coloured, width: canvas.width, scale: Number(canvas.dataset.scale)};
                })"""
            )
            labels = [item.text_content() or "" for item in page.query_selector_all(".slice li")]
            types_shown = [item.text_content() or "" for item in page.query_selector_all(".slice li .types")]
            page.screenshot(path=str(tmp_path / "viewer.png"))
        finally:
            browser.close()
    assert all(item["width"] == 64 * item["scale"] for item in drawn), "the canvas shows the original grid"
    assert sum(item["boxes"] for item in drawn) == len(labels) > 0
    for item in drawn:
        # the slice preview is grey; coloured pixels exist exactly when boxes were drawn
        assert (item["coloured"] > 0) == (item["boxes"] > 0)
    scores = [float(label.split(",")[0].split()[-1]) for label in labels]
    assert all(score >= 0.5 for score in scores), "the page passed min_score to the server"
    # each detection shows its three most likely types with P(type | lesion), as the server answered
    detections = [detection for result in answer["results"] for detection in result["detections"]]
    expected = []
    for detection in detections:
        top = sorted(detection["type_scores"].items(), key=lambda item: -item[1])[:3]
        expected.append("type given a lesion: " + ", ".join(f"{name.replace('_', ' ')} {p:.2f}" for name, p in top))
    assert len(detections) == len(labels) and all(len(detection["type_scores"]) == 8 for detection in detections)
    assert types_shown == expected
    assert all(shown.count(",") == 2 for shown in types_shown), "three types each"
