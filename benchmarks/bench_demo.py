"""The demo as a visitor sees it: time from clicking Generate (T2VM, an example, the page's default settings) to the
side-by-side mp4 playing in the browser, and the app process's peak memory.

Starts `python app.py` in a subprocess and drives it with Playwright in headless Chromium (Debian's `chromium`
package; Playwright's own browser download is not used). The first click is reported apart: the app warms the text
encoder and the renderer up at start, so it should be close to the others. Also printed: the app process's CPU
seconds per click, which (unlike wall time) do not grow when other processes share the cores.
Targets (issue 24, this 2-core machine): the default example in at most 6 s, under 2 GB RSS.

    python -m benchmarks.bench_demo --checkpoint assets/egotwin-tiny [--runs 3] [--steps 50] [--screenshot app.png]

The helpers here (`AppServer`, `open_browser`, `load_example`, `generate_in_browser`) are also what
tests/test_app_browser.py uses.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("EGOTWIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
RESULT_VIDEO_READY = """(previous) => {
    const video = document.querySelector('#result-video video');
    return video !== null && video.currentSrc !== '' && video.currentSrc !== previous && video.readyState >= 2
        && Number.isFinite(video.duration) && video.duration > 0;
}"""
"""True once the result <video> shows a new file with its first frame decoded (readyState >= HAVE_CURRENT_DATA)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py` in a subprocess on a free local port; a context manager that stops it on exit."""

    def __init__(
        self,
        checkpoint: str | Path,
        steps: int | None = None,
        startup_timeout: float = 600.0,
        env: dict[str, str] | None = None,
    ):
        """env: variables set for the app on top of this process's (e.g. to make OpenGL unavailable)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, str(ROOT / "app.py"), "--checkpoint", str(checkpoint), "--port", str(self.port)]
        command += ["--steps", str(steps)] if steps is not None else []
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"egotwin-app-{self.port}.log", "w+")
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait_until_up(startup_timeout)

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(1)
        self.stop()
        raise TimeoutError(f"the app did not answer on {self.url} within {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-5000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_rss_bytes(self) -> int:
        """Peak resident memory of the app process so far (Linux VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmHWM not found in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        """CPU time of the app process so far, its threads and finished child processes (ffmpeg) included: unlike
        wall time, it does not grow while other processes hold the cores."""
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def open_browser(playwright):
    """Headless Chromium from the system package."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def result_video_state(page) -> dict:
    """src, readyState and duration of the result <video> (None values before the first result)."""
    return page.evaluate(
        """() => { const v = document.querySelector('#result-video video');
        return v ? {src: v.currentSrc, readyState: v.readyState, duration: v.duration}
                 : {src: '', readyState: null, duration: null}; }"""
    )


def load_example(page, label: str) -> None:
    """Click the example thumbnail `label` ("T2VM: <prompt>") and wait until its values are in the inputs."""
    from demo.ui import example_label, load_examples

    index = [example_label(row) for row in load_examples()].index(label)
    page.locator("#examples .thumbnail-item").nth(index).click()
    mode, prompt = label.split(": ", 1)
    page.wait_for_function(
        """([mode, prompt]) => document.querySelector('#prompt textarea').value === prompt
            && document.querySelector(`#mode input[value="${mode}"]`).checked""",
        arg=[mode.lower(), prompt],
    )


def generate_in_browser(page, button: str = "#generate", timeout_s: float = 600.0) -> float:
    """Click `button` (Generate or Continue) and wait for a new playable result video; returns the seconds waited."""
    previous = result_video_state(page)["src"]
    start = time.perf_counter()
    page.click(button)
    page.wait_for_function(RESULT_VIDEO_READY, arg=previous, timeout=timeout_s * 1000, polling=100)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "assets" / "egotwin-tiny"), help="pipeline folder")
    parser.add_argument("--runs", type=int, default=3, help="timed clicks after the first one")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the app's default)")
    parser.add_argument("--example", default="T2VM: go to the door and open it", help="label of the example to run")
    parser.add_argument("--screenshot", default=None, help="save a screenshot of the page after the last run")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    with AppServer(args.checkpoint, steps=args.steps) as server, sync_playwright() as playwright:
        print(f"app up in {time.perf_counter() - start:.1f} s at {server.url} (checkpoint {args.checkpoint})")
        browser = open_browser(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url)
        load_example(page, args.example)
        first = generate_in_browser(page)
        print(f"first click -> side-by-side playing: {first:.2f} s")
        times, cpu = [], []
        for _ in range(args.runs):
            before = server.cpu_seconds()
            times.append(generate_in_browser(page))
            cpu.append(server.cpu_seconds() - before)
        print(f"click -> side-by-side playing, {args.runs} runs: " + ", ".join(f"{t:.2f}" for t in times))
        print(f"median {statistics.median(times):.2f} s wall (target <= 6 s)")
        print(f"median {statistics.median(cpu):.2f} s CPU of the app process per click ({os.cpu_count()} cores here)")
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"status: {page.locator('#status').inner_text().splitlines()[0]}")
        print(f"peak RSS of the app process: {server.peak_rss_bytes() / 2**30:.2f} GiB (target < 2 GB)")
        if args.screenshot:
            page.wait_for_timeout(1500)  # let the video play a little
            page.screenshot(path=args.screenshot, full_page=True)
            print(f"screenshot: {args.screenshot}")
        browser.close()


if __name__ == "__main__":
    main()
