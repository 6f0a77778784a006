"""The demo's life as a process (issue 24): SIGTERM and SIGINT both stop `python app.py` cleanly and remove everything
it wrote (its session folders and Gradio's cache, both under <tmp>/egotwin-demo-<pid>); a start removes what a killed
run left behind; Gradio's cache is pruned to its budget after every run. The SIGTERM run has no OpenGL: PyOpenGL and
pyrender are made unimportable, as on a machine without Mesa's libEGL, and the app must still start (so importing
the demo does not import them), serve and generate, drawing the body view with the software rasteriser."""

import os
import signal
import subprocess
import time

import pytest

from benchmarks.bench_demo import ROOT, AppServer
from demo.inputs import EXAMPLES_DIR
from demo.session import APP_PREFIX, folder_bytes, prune_cache, remove_leftovers

ADVANCED = (7, False, 2, 6.0, 1.5, 1.5, 0.0)  # seed, random seed, steps, w_t, w_m, w_v, motion lead
DEAD_PID = 99_999_999  # above Linux's largest pid (4,194,304): no process has it
NO_OPENGL = """
import sys


class NoOpenGL:
    \"\"\"Refuses PyOpenGL and pyrender the way a machine without libEGL does: with an ImportError.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("OpenGL", "pyrender"):
            raise ImportError(f"Unable to load EGL library (no OpenGL on this test machine): {name}")
        return None


sys.meta_path.insert(0, NoOpenGL())
"""


def generate(client, prompt: str = "go to the door") -> str:
    from gradio_client import handle_file

    image = handle_file(str(EXAMPLES_DIR / "door.png"))
    *_, status, _ = client.predict("t2vm", prompt, image, "standing", None, None, None, *ADVANCED, api_name="/generate")
    return status


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_app_leaves_nothing_and_a_start_clears_a_killed_one(tiny_pipeline_dir, tmp_path, signum):
    from gradio_client import Client

    killed = tmp_path / f"{APP_PREFIX}{DEAD_PID}"  # what a SIGKILLed run leaves: its folder, Gradio's cache inside
    (killed / "gradio" / "0123abcd").mkdir(parents=True)
    (killed / "gradio" / "0123abcd" / "side_by_side.mp4").write_bytes(b"x" * 1000)
    env = {"TMPDIR": str(tmp_path)}
    without_opengl = signum == signal.SIGTERM
    if without_opengl:
        site = tmp_path.parent / f"{tmp_path.name}-site"  # outside the app's temp dir, which must stay clean
        site.mkdir()
        (site / "sitecustomize.py").write_text(NO_OPENGL)
        env["PYTHONPATH"] = f"{site}:{ROOT}"
    server = AppServer(tiny_pipeline_dir, steps=2, env=env)
    try:
        root = tmp_path / f"{APP_PREFIX}{server.process.pid}"
        assert not killed.exists() and root.is_dir()
        client = Client(server.url, verbose=False)
        try:
            assert "T2VM" in generate(client)
        finally:
            client.close()  # no heartbeat stream of ours stays open while the server shuts down
        cached = {p.name for p in (root / "gradio").rglob("*") if p.is_file()}
        assert {"side_by_side.mp4", "door.png"} <= cached  # the result and the upload went into the app's folder
        assert not [p for p in tmp_path.iterdir() if p != root]  # and nowhere else
        if without_opengl:
            log = server.output()
            assert "Unable to load EGL library" in log and "the body view uses the software renderer" in log
        server.process.send_signal(signal.SIGUSR1)  # the stack dump a stuck app gives: it prints, the app lives on
        deadline = time.monotonic() + 30
        while "(most recent call first)" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "(most recent call first)" in server.output() and server.alive()
        server.process.send_signal(signum)
        # an orderly exit, not death by the signal; the SIGINT case has hung here intermittently in full-suite runs
        # (past 60 s and past 120 s), cause not yet found: see issue 26's 2026-12-05 note. If it hangs again, the
        # failure shows every thread's stack (the app dumps them on SIGUSR1)
        try:
            code = server.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.process.send_signal(signal.SIGUSR1)
            time.sleep(5)
            pytest.fail(f"the app did not exit within 120 s of {signal.Signals(signum).name}:\n{server.output()}")
        assert code == 0
        assert not root.exists(), list(root.rglob("*"))
        assert "Keyboard interruption" in server.output()  # Gradio's own shutdown ran, not a bare exit
    finally:
        server.stop()


def test_remove_leftovers_keeps_running_apps(tmp_path):
    mine, dead = tmp_path / f"{APP_PREFIX}{os.getpid()}", tmp_path / f"{APP_PREFIX}{DEAD_PID}"
    other = tmp_path / f"{APP_PREFIX}{os.getppid()}"  # a running process: another live demo
    for folder in (mine, dead, other, tmp_path / "egotwin-demo-notapid"):
        folder.mkdir()
    assert remove_leftovers(tmp_path) == [dead]
    assert mine.exists() and other.exists() and not dead.exists()


def test_prune_cache_removes_the_oldest_entries_first(tmp_path):
    for i in range(5):  # five cached files of 1000 bytes, one folder each, written one after another
        (tmp_path / f"entry{i}").mkdir()
        (tmp_path / f"entry{i}" / "file.mp4").write_bytes(b"x" * 1000)
        os.utime(tmp_path / f"entry{i}", (time.time() - 100 + i, time.time() - 100 + i))
    assert prune_cache(tmp_path, max_bytes=2500) == 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry3", "entry4"]
    assert folder_bytes(tmp_path) == 2000 and prune_cache(tmp_path / "missing") == 0
