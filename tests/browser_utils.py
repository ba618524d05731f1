"""Helpers for the browser tests: headless Chromium, JS-error capture, pixel checks, and
a throw-away JupyterLab server.

Everything runs offline. Chromium is the system one (``/usr/bin/chromium``, never a
downloaded build) with networking features off; any http(s) request a page makes to a
host other than the local server is aborted, so a test fails loudly if a view needs the
network instead of hanging on it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

CHROMIUM = os.environ.get("RDLVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Where screenshots go (outside the repository).
SHOT_DIR = Path(os.environ.get("RDLVIZ_SHOT_DIR", "/tmp/rdlviz-browser"))


def launch(playwright):
    """Start headless system Chromium."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class ErrorLog:
    """Collects page errors (uncaught exceptions) and console errors of a page.

    Args:
        page: a Playwright page.
        allow_local: also let requests to ``127.0.0.1``/``localhost`` through
            (a local JupyterLab); ``file://`` is always allowed, other URLs are aborted.
    """

    def __init__(self, page, allow_local: bool = False) -> None:
        self.page_errors: List[str] = []
        self.console_errors: List[str] = []
        self.blocked: List[str] = []
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)

        def route(r):
            url = r.request.url
            local = url.startswith(("http://127.0.0.1", "http://localhost", "ws://127.0.0.1"))
            if url.startswith(("file:", "data:", "blob:", "about:")) or (allow_local and local):
                r.continue_()
            else:
                self.blocked.append(url)
                r.abort()

        page.route("**/*", route)

    def errors(self, ignore: tuple = ()) -> List[str]:
        """Page errors plus console errors, minus those containing any ``ignore`` text
        and minus the console echo of requests this log blocked on purpose."""
        errs = list(self.page_errors)
        for msg in self.console_errors:
            if any(s in msg for s in ignore):
                continue
            if self.blocked and "net::ERR_FAILED" in msg:
                continue  # the console's echo of a request we aborted (listed in .blocked)
            errs.append(msg)
        return errs


def pixel_stats(png: Path) -> dict:
    """``{"std": grey-level standard deviation, "ink": share of non-near-white pixels}``."""
    from PIL import Image, ImageStat

    img = Image.open(png).convert("L")
    std = ImageStat.Stat(img).stddev[0]
    hist = img.histogram()
    total = sum(hist)
    ink = sum(hist[:235]) / total
    return {"std": std, "ink": ink}


def assert_not_blank(png: Path, min_std: float = 8.0, min_ink: float = 0.01) -> dict:
    """Fail unless the screenshot shows something (variance and some non-white area)."""
    stats = pixel_stats(png)
    assert stats["std"] >= min_std and stats["ink"] >= min_ink, f"{png} looks blank: {stats}"
    return stats


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 for one test session, fully offline.

    News and update checks are off (server side and in the user settings), the app
    object is exposed as ``window.jupyterapp`` so a test can run commands, and every
    Jupyter directory is inside ``root``'s parent so nothing of the user's leaks in.

    Use as a context manager; the server (its whole process group) is stopped on exit.
    """

    def __init__(self, root: Path, *, env: Optional[dict] = None, startup_timeout: float = 90.0) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.token = "rdlviz-test-" + os.urandom(6).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.root.parent / "jupyterlab.log"
        self._env = dict(env or {})

    def __enter__(self) -> "JupyterLab":
        home = self.root.parent
        settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(os.environ)
        env.update({
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
            "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
            "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
            "IPYTHONDIR": str(home / "ipython"),
        })
        env.update(self._env)
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
            f"--port={self.port}", f"--IdentityProvider.token={self.token}", "--allow-root",
            "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
            f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",
        ]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"JupyterLab did not answer within {self.startup_timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Kernels run in sessions of their own; remember them to make sure they end.
            try:
                import psutil

                children = psutil.Process(self.proc.pid).children(recursive=True)
            except Exception:
                children = []
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            for child in children:  # the server shuts its kernels down on SIGTERM; check
                try:
                    child.wait(timeout=5)
                except Exception:
                    try:
                        child.kill()
                    except Exception:
                        pass
        if getattr(self, "_log", None):
            self._log.close()


def make_toy_database(out_dir: Path) -> Path:
    """A small Formula-1-like database (5 tables, 5 foreign keys) for the view tests.

    ``drivers.code`` is a distinct code per row, so the stype proposal leaves it out as
    identifier-like -- the picker tests bring it back. ``races`` has a time column and is
    referenced by two fact tables; ``circuits`` and ``drivers`` have none.
    """
    import numpy as np
    import pandas as pd

    from rdlviz.data.manifest import write_dataset

    rng = np.random.default_rng(0)
    circuits = pd.DataFrame({"circuitId": np.arange(6), "name": [f"Circuit {i} park" for i in range(6)],
                             "country": ["UK", "IT", "UK", "FR", "DE", "IT"],
                             "alt": rng.normal(100, 30, 6)})
    drivers = pd.DataFrame({"driverId": np.arange(40), "code": [f"DRV{i:03d}" for i in range(40)],
                            "surname": [f"Driver number {i}" for i in range(40)],
                            "nationality": rng.choice(["British", "German", "Italian"], 40),
                            "dob": pd.date_range("1970-01-01", periods=40, freq="200D")})
    races = pd.DataFrame({"raceId": np.arange(40), "circuitId": rng.integers(0, 6, 40),
                          "year": 2000 + np.arange(40) // 4,
                          "date": pd.date_range("2000-03-01", periods=40, freq="91D")})
    n = 300
    rid = rng.integers(0, 40, n)
    results = pd.DataFrame({"resultId": np.arange(n), "raceId": rid, "driverId": rng.integers(0, 40, n),
                            "points": rng.integers(0, 25, n).astype(float), "grid": rng.integers(1, 20, n),
                            "status": rng.choice(["Finished", "Engine", "Accident"], n),
                            "date": races["date"].to_numpy()[rid]})
    quali = pd.DataFrame({"qualifyId": np.arange(100), "raceId": rng.integers(0, 40, 100),
                          "driverId": rng.integers(0, 40, 100), "position": rng.integers(1, 20, 100)})
    quali["date"] = races["date"].to_numpy()[quali["raceId"]] - pd.Timedelta(days=1)
    write_dataset(
        "toy-f1",
        {"circuits": circuits, "drivers": drivers, "races": races, "results": results, "qualifying": quali},
        pkeys={"circuits": "circuitId", "drivers": "driverId", "races": "raceId", "results": "resultId",
               "qualifying": "qualifyId"},
        fkeys={"races": {"circuitId": "circuits"}, "results": {"raceId": "races", "driverId": "drivers"},
               "qualifying": {"raceId": "races", "driverId": "drivers"}},
        time_cols={"races": "date", "results": "date", "qualifying": "date"},
        val_timestamp="2006-01-01", test_timestamp="2008-01-01", out_dir=out_dir,
    )
    return Path(out_dir)
