"""Per-visitor state of the demo: a private temporary folder for the files of the latest run, and the latest result
(what Continue extends); and the one temporary folder the app owns.

Gradio keeps one `Session` per browser tab in a `gr.State`; `close_session` is that state's delete callback, so the
folder goes when the tab is closed or the state expires. Gradio copies every returned file (and every upload) into
its own cache, so only the latest run's folder is kept here: each new run removes the old one.

Everything the app writes lives under `APP_ROOT` (`<tmp>/egotwin-demo-<pid>`): the sessions' folders and, through
$GRADIO_TEMP_DIR (`use_app_temp_dir`), Gradio's cache. The disk it uses is bounded: `prune_cache` keeps Gradio's
cache under `MAX_CACHE_BYTES` (oldest entries first) after every run, and Gradio deletes entries older than an hour
(`delete_cache` in demo/ui.py). The whole folder is removed when the process exits (app.py turns SIGTERM into the
same orderly exit as Ctrl+C), and a start removes the folders of earlier runs that were killed
(`remove_leftovers`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from egotwin.pipelines import EgoTwinPipelineOutput

APP_PREFIX = "egotwin-demo-"
APP_ROOT = Path(tempfile.gettempdir()) / f"{APP_PREFIX}{os.getpid()}"
"""Everything this process writes, inside the system temp directory (which Gradio serves files from); removed when
the process exits, so a stopped server leaves nothing behind."""
SESSIONS_ROOT = APP_ROOT / "sessions"
"""Parent of the session folders."""
GRADIO_CACHE = APP_ROOT / "gradio"
"""Gradio's cache of uploads and served files ($GRADIO_TEMP_DIR)."""
MAX_CACHE_BYTES = int(float(os.environ.get("EGOTWIN_DEMO_CACHE_MB", "512")) * (1 << 20))
"""Disk that Gradio's cache may use ($EGOTWIN_DEMO_CACHE_MB, default 512 MB: a few hundred runs)."""
atexit.register(shutil.rmtree, APP_ROOT, ignore_errors=True)


def use_app_temp_dir() -> Path:
    """Point Gradio's cache into this process's folder ($GRADIO_TEMP_DIR, which Gradio reads when it is imported:
    call this first) and remove what killed runs left behind; returns the cache folder."""
    remove_leftovers()
    GRADIO_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(GRADIO_CACHE)
    return GRADIO_CACHE


def remove_leftovers(parent: Path | None = None) -> list[Path]:
    """Remove the folders of earlier runs of the demo (`egotwin-demo-<pid>`) whose process no longer exists; returns
    them. A running demo's folder is left alone."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    removed = []
    for folder in parent.glob(f"{APP_PREFIX}*"):
        pid = folder.name[len(APP_PREFIX) :]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (0 if it does not exist)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def prune_cache(cache: Path = GRADIO_CACHE, max_bytes: int = MAX_CACHE_BYTES) -> int:
    """Delete Gradio's oldest cache entries (one folder per file) until the cache holds at most `max_bytes`;
    returns the bytes left."""
    if not cache.is_dir():
        return 0
    entries = []
    for entry in cache.iterdir():
        try:
            entries.append(
                (entry.stat().st_mtime, folder_bytes(entry) if entry.is_dir() else entry.stat().st_size, entry)
            )
        except FileNotFoundError:  # removed meanwhile, by Gradio's own cleanup
            continue
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        total -= size
    return total


@dataclass
class Session:
    """One visitor's files and latest result."""

    root: Path = SESSIONS_ROOT
    """Where the session's private folder is made, on its first run."""
    folder: Path | None = None
    """The session's private folder; None until the first run."""
    last: EgoTwinPipelineOutput | None = field(default=None, repr=False)
    """The latest generated (or continued) clip."""
    modes: list[str] = field(default_factory=list)
    """The mode of each 5 s clip of `last`."""
    start_key: str | None = None
    """The first clip's start frame as the model saw it, hashed (`demo.head_view.frame_key`)."""
    runs: int = 0
    """Runs so far; names the run folders."""
    run_folder: Path | None = None

    def new_run_folder(self) -> Path:
        """An empty folder for the next run's files; the previous run's folder is removed."""
        if self.folder is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
        if self.run_folder is not None:
            shutil.rmtree(self.run_folder, ignore_errors=True)
        self.runs += 1
        self.run_folder = self.folder / f"run-{self.runs:03d}"
        self.run_folder.mkdir(parents=True)
        return self.run_folder

    def close(self) -> None:
        """Remove the session's folder and forget its result."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.last = None
        self.modes = []
        self.run_folder = None


def close_session(session: Session | None) -> None:
    """The `gr.State` delete callback."""
    if session is not None:
        session.close()
