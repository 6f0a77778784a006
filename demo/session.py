"""Per-visitor state of the demo: a private temporary folder for the files of the latest run, and the latest result
(what Continue extends).

Gradio keeps one `Session` per browser tab in a `gr.State`; `close_session` is that state's delete callback, so the
folder goes when the tab is closed or the state expires (and all of them when the process exits). Gradio copies every
returned file into its own cache (which `Blocks(delete_cache=...)` empties), so only the latest run's folder is kept
here: each new run removes the old one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from egotwin.pipelines import EgoTwinPipelineOutput

SESSIONS_ROOT = Path(tempfile.gettempdir()) / f"egotwin-demo-{os.getpid()}"
"""Parent of this process's session folders, inside the system temp directory (which Gradio serves files from);
removed when the process exits, so a stopped server leaves nothing behind."""
atexit.register(shutil.rmtree, SESSIONS_ROOT, ignore_errors=True)


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
