"""The demo as a visitor and as an API client see it: `python app.py` on the shipped model at 2 sampling steps,
driven by Playwright in headless Chromium (all three modes from the examples, Continue, a real download, a bad
input's message) and called through gradio_client's named endpoints (good and bad inputs, an oversized upload);
the server must stay up throughout.

Needs Debian's `chromium` and `pip install playwright` (its own browser download is not used); skipped without them.
"""

from pathlib import Path

import httpx
import pytest

from benchmarks.bench_demo import (
    CHROMIUM,
    AppServer,
    generate_in_browser,
    load_example,
    open_browser,
    result_video_state,
)
from demo.inputs import EXAMPLES_DIR, MAX_UPLOAD_BYTES
from egotwin.motion import Motion

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow
STEPS = 2
SHIPPED = EXAMPLES_DIR.parent / "egotwin-tiny"
CLIP_SECONDS = 81 / 16  # the side-by-side video runs at the motion's 16 fps
EXPORTS = {"side_by_side.mp4", "egocentric.mp4", "motion.npz", "motion.bvh", "motion.glb", "cameras.npz"}
ADVANCED = (7, False, STEPS, 6.0, 1.5, 1.5, 0.0)  # seed, random seed, steps, w_t, w_m, w_v, motion lead


@pytest.fixture(scope="module")
def server():
    """The shipped model (the page then starts with its result made in advance), at 2 sampling steps."""
    with AppServer(SHIPPED, steps=STEPS) as app:
        yield app


def download_names(page) -> set[str]:
    return set(page.locator("#downloads a[download]").evaluate_all("links => links.map(a => a.download)"))


def test_three_modes_continue_and_downloads_in_the_browser(server, tmp_path):
    with sync_api.sync_playwright() as playwright:
        browser = open_browser(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url)

        # before any click: the first example's inputs and its pre-generated result; Continue waits for a clip
        sync_api.expect(page.locator("#status")).to_contain_text("Example result, made in advance")
        page.wait_for_function("() => document.querySelector('#result-video video')?.readyState >= 2")
        pregenerated = result_video_state(page)["src"]
        assert pregenerated.endswith("side_by_side.mp4")
        sync_api.expect(page.locator("#continue")).to_be_disabled()
        sync_api.expect(page.locator("#alignment")).to_contain_text("a motionless camera")

        # a bad input first: an empty prompt is explained, nothing is generated
        page.fill("#prompt textarea", "")
        page.click("#generate")
        sync_api.expect(page.get_by_text("Please enter a prompt").first).to_be_visible(timeout=60_000)
        assert result_video_state(page)["src"] == pregenerated
        sync_api.expect(page.locator("#continue")).to_be_disabled()

        for label in (
            "TM2V: the person crouches and rises again",
            "TV2M: turn to the left until the red cabinet is in front",
            "T2VM: go to the door and open it",
        ):
            load_example(page, label)
            generate_in_browser(page)
            video = result_video_state(page)
            assert video["readyState"] >= 2 and video["duration"] == pytest.approx(CLIP_SECONDS, abs=0.1), label
            sync_api.expect(page.locator("#status")).to_contain_text(label.split(":")[0], timeout=10_000)
            assert download_names(page) >= EXPORTS, label

        # the example's apartment seen from the generated head, on request (issue 26)
        page.click("#head-view-button")
        sync_api.expect(page.locator("#head-view-note")).to_contain_text("What this head would see", timeout=120_000)
        page.wait_for_function("() => document.querySelector('#head-view video')?.readyState >= 2")
        sync_api.expect(page.locator("#continue")).to_be_enabled()
        page.click("#reuse-seed")  # one click: the next run reuses the seed shown
        page.get_by_text("Advanced", exact=True).click()
        sync_api.expect(page.locator("#randomize input")).not_to_be_checked()
        generate_in_browser(page, "#continue")
        video = result_video_state(page)
        assert video["duration"] == pytest.approx(2 * CLIP_SECONDS - 1 / 16, abs=0.1)
        sync_api.expect(page.locator("#status")).to_contain_text("10.0 s (2 clips)")
        with page.expect_download() as download:  # a download link really serves the joined motion
            page.locator("#downloads a[download='motion.npz']").click()
        download.value.save_as(tmp_path / "motion.npz")
        assert Motion.load_npz(tmp_path / "motion.npz").num_frames == 161
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        browser.close()
    assert server.alive()


def test_named_api_endpoints_through_gradio_client(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/generate", "/continue"} <= set(endpoints)

    def generate(prompt: str, image: Path | None, mode: str = "t2vm", pose=None, motion=None, video=None):
        files = [handle_file(str(f)) if f else None for f in (image, pose, motion, video)]
        return client.predict(mode, prompt, files[0], "standing", *files[1:], *ADVANCED, api_name="/generate")

    door = EXAMPLES_DIR / "door.png"
    video, glb, head_view, head_note, downloads, alignment, status, seed = generate("go to the door and open it", door)
    assert seed == 7 and "seed **7**" in status
    assert Path(video).name == "side_by_side.mp4" and Path(video).stat().st_size > 0 and Path(glb).suffix == ".glb"
    assert {Path(f).name for f in downloads} >= EXPORTS
    *_, status, _ = client.predict("turn left", *ADVANCED, api_name="/continue")
    assert "10.0 s (2 clips)" in status
    *_, status, _ = generate("look at the floor", None, "tv2m", video=EXAMPLES_DIR / "turn_left.mp4")
    assert "TV2M" in status

    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    with pytest.raises(AppError, match="'corrupt.png' is not a readable image"):
        generate("go to the door", tmp_path / "corrupt.png")
    with pytest.raises(AppError, match="Please enter a prompt"):
        generate("  ", door)
    with open(tmp_path / "huge.png", "wb") as f:  # sparse: over the upload limit without using the disk
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client knows the server's limit...
        generate("go to the door", tmp_path / "huge.png")
    with open(tmp_path / "huge.png", "rb") as f:  # ...and the server refuses it anyway
        response = httpx.post(f"{server.url}/gradio_api/upload", files={"files": ("huge.png", f)}, timeout=120)
    assert response.status_code == 413 and "maximum allowed size" in response.text
    # still serving after all of that
    *_, status, seed = generate("go to the door and open it", door)
    assert seed == 7 and server.alive()
