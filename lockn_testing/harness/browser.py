"""The ComfyUI editor in headless Chromium (Playwright), for the browser tests (tests/test_web*.py).

`editor_server` starts a ComfyUI server of the test module's own, with the editor settings that keep the
first-run dialogs and tours out of the way; `Page` wraps a Playwright page on that editor: it keeps the
console errors, explains a failed wait (with the server's log), loads a workflow file the way the editor
opens one, takes fit-to-view screenshots and reads what the editor shows (dialogs, toasts, nodes). The
pytest fixtures that use them (`srv`, `editor`) are in tests/conftest.py.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from lockn_testing.harness.server import ComfyServer

CHROMIUM = os.environ.get("LOCKN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1920, "height": 1200}
WAIT_MS = 20_000
# stored before the editor opens (app/app_settings.py: POST /settings/{id}, the value as JSON):
EDITOR_SETTINGS = {
    "Comfy.TutorialCompleted": True,                          # no first-run templates dialog
    "Comfy.OnboardingCoachmarks.Seen": ["appMode", "firstRun"],   # 1.48+: no "Welcome to Apps" tour
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,                  # text drawn at any zoom (fitted screenshots)
}
# the requests Page.settle waits for: not a <video>'s media stream (Chromium keeps one open while it plays) nor
# the websocket
SETTLE_TYPES = {"document", "fetch", "xhr", "script", "stylesheet", "image", "font"}
TAB = "[data-testid=lockn-residency]"                         # the LockN sidebar tab (web/lockn_residency.js)

# ---- what the page is asked (JavaScript) ----------------------------------------------------------
# a top-level node by its title (a stage's subgraph node, or Brief), then its widget by name: on a
# subgraph node that is the promoted widget on its face, named after the subgraph's input
SET_WIDGETS = """([title, name, value]) => {
  const nodes = window.app.graph._nodes.filter(n => n.title === title);
  if (nodes.length !== 1) return `${nodes.length} top-level nodes titled ${title}`;
  const w = (nodes[0].widgets || []).find(w => w.name === name);
  if (!w) return `no widget ${name} on ${title}: ${(nodes[0].widgets || []).map(w => w.name)}`;
  w.value = value;
  return null;
}"""
TOP_LEVEL = """() => window.app.graph._nodes.filter(n => !['Note', 'MarkdownNote'].includes(n.type))
  .map(n => [n.title, n.isSubgraphNode ? n.isSubgraphNode() : false])"""
# every node of the loaded file, on the top level and inside the subgraphs, that the editor could not
# make (its type is not registered: LiteGraph keeps it as a plain node with has_errors)
BROKEN_NODES = """() => {
  const graphs = [window.app.graph, ...(window.app.graph.subgraphs ? window.app.graph.subgraphs.values() : [])];
  return graphs.flatMap(g => g._nodes.filter(n => n.has_errors).map(n => `${n.type} (${n.id}) in ${g.name || 'top'}`));
}"""
# what is in front of the graph: dialogs, error toasts, the error overlay (only what is shown)
SHOWN_PROBLEMS = """() => [...document.querySelectorAll(
    '.p-dialog, [role=dialog], [role=alertdialog], .p-toast-message-error, [data-testid=error-overlay]')]
  .filter(e => e.offsetParent !== null || getComputedStyle(e).position === 'fixed')
  .filter(e => e.getBoundingClientRect().width > 0)
  .map(e => e.innerText.slice(0, 300))"""
# fit to view, the canvas's own fitting (app.canvas.ds.fitToBounds) around every node with its title bar
# (and a subgraph's input and output nodes), with a small margin
FIT_VIEW = """() => {
  const c = window.app.canvas, g = c.graph, T = 30;
  const boxes = g._nodes.map(n => [n.pos[0], n.pos[1] - T, n.size[0], n.size[1] + T]);
  for (const io of [g.inputNode, g.outputNode]) if (io && io.boundingRect) boxes.push([...io.boundingRect]);
  const x0 = Math.min(...boxes.map(b => b[0])), y0 = Math.min(...boxes.map(b => b[1]));
  const x1 = Math.max(...boxes.map(b => b[0] + b[2])), y1 = Math.max(...boxes.map(b => b[1] + b[3]));
  c.ds.fitToBounds([x0, y0, x1 - x0, y1 - y0], {zoom: 0.9});
  c.setDirty(true, true);
  return c.ds.scale;
}"""
OPEN_STAGE = """(title) => {
  const node = window.app.graph._nodes.find(n => n.title === title);
  window.app.canvas.openSubgraph(node.subgraph, node);
}"""
# App Mode (frontend 1.43+): the form's side panel, its fields, its Run button
APP_FORM = "[data-testid=linear-widgets]"
APP_FIELD = "[data-testid=app-mode-widget-item]"
APP_RUN = "[data-testid=linear-run-button] button:has-text('Run')"


@contextlib.contextmanager
def editor_server(models_root, settings: dict | None = None):
    """A ComfyUI server for the editor's tests (its own base directory, stopped and removed after)."""
    server = ComfyServer(models_root)
    try:
        server.start()
        for key, value in {**EDITOR_SETTINGS, **(settings or {})}.items():
            status, body = server.post(f"/settings/{key}", value)
            assert status == 200, f"could not store the setting {key}: {status} {body}"
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


def json_value(text: str):
    """A --set value as the widget takes it: JSON where it parses (numbers, true), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class Page:
    """A Playwright page on the editor that remembers console errors and explains failed waits."""

    def __init__(self, page, srv):
        self.page, self.srv = page, srv
        self.errors: list[str] = []          # every console error / uncaught exception, with where it came from
        self.in_flight = 0                   # the page's own requests under way (see settle)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}\n{getattr(exc, 'stack', '') or ''}"))
        page.on("request", lambda r: self._count(r, 1))
        page.on("requestfinished", lambda r: self._count(r, -1))
        page.on("requestfailed", lambda r: self._count(r, -1))

    def _count(self, request, step: int):
        if request.resource_type in SETTLE_TYPES:
            self.in_flight = max(0, self.in_flight + step)

    def _console(self, msg):
        if msg.type == "error":
            loc = msg.location or {}
            self.errors.append(f"{msg.text} ({loc.get('url', '?')}:{loc.get('lineNumber', '?')})")

    def open(self, timeout: int = 60_000) -> "Page":
        """Go to the editor and wait until it can load and queue workflows."""
        self.page.goto(self.srv.url)
        self.wait_for("() => window.app && window.app.graph && window.app.queuePrompt && window.app.extensionManager",
                      "the editor", timeout=timeout)
        return self

    def extension_errors(self) -> list[str]:
        return [e for e in self.errors if "lockn" in e.lower()]

    def explain(self, what: str) -> str:
        try:
            tab = self.page.locator(TAB).inner_text(timeout=1000)
        except Exception:
            tab = "(no LockN tab in the page)"
        return (f"{what}\n--- LockN tab text:\n{tab}\n--- console errors:\n" + "\n".join(self.errors or ["(none)"])
                + f"\n--- GET /lockn/residency:\n{self.srv.request('GET', '/lockn/residency')[1]}"
                + f"\n--- server log tail:\n{self.srv.log_tail(3000)}")

    def wait_for(self, js: str, what: str, arg=None, timeout: int = WAIT_MS):
        import pytest
        from playwright.sync_api import TimeoutError as PWTimeout
        try:
            self.page.wait_for_function(js, arg=arg, timeout=timeout)
        except PWTimeout:
            pytest.fail(self.explain(f"timed out after {timeout / 1000:.0f}s waiting for {what}"), pytrace=False)

    def row(self, name: str):
        return self.page.locator(f'[data-testid=lockn-row][data-name="{name}"]')

    def wait_row(self, name: str, what: str, **attrs):
        """Wait until the tab's row of `name` carries the given data-* attributes."""
        sel = f'[data-testid=lockn-row][data-name="{name}"]' + "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
        self.wait_for("sel => document.querySelector(sel) !== null", what, arg=sel)

    # ---- workflows in the editor -------------------------------------------------------------------
    def load(self, workflow: dict, name: str) -> None:
        """Open a workflow the way the editor opens a file called NAME.json (a tab of that name; its
        extra.linearMode decides App Mode or the graph), and wait until the page has settled (settle)."""
        self.page.evaluate("async ([g, n]) => { await window.app.loadGraphData(g, true, true, n); }", [workflow, name])
        self.settle()

    def frames(self, n: int = 2) -> None:
        """Wait until the page has drawn `n` more animation frames (the canvas draws on the next frame
        after setDirty; Vue has rendered what changed before it)."""
        self.page.evaluate("n => new Promise(done => { const f = k => k ? requestAnimationFrame(() => f(k - 1)) : done(); f(n); })", n)

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until the page is quiet: none of its own requests (SETTLE_TYPES) under way for `quiet`
        seconds, then two animation frames drawn. The editor's loadGraphData awaits its own checks (missing
        nodes, models and media) and asks for its warnings before it returns; what they fetch and show
        is in the page once this returns (a fixed sleep of 1 to 2 s stood here before)."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if self.in_flight:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet:
                break
            self.page.wait_for_timeout(50)            # lets Playwright deliver the request events
        self.frames()

    def shown_problems(self) -> list[str]:
        return self.page.evaluate(SHOWN_PROBLEMS)

    def in_app_mode(self) -> bool:
        return self.page.locator(APP_FORM).count() > 0 and self.page.locator(APP_FORM).first.is_visible()

    def screenshot(self, path: Path, fit: bool = True) -> None:
        """A picture of the page; of the graph fitted to the view, unless fit is False (App Mode's form)."""
        if fit:
            self.page.evaluate(FIT_VIEW)
            self.frames()                             # the canvas drawn at the fitted view
        else:
            self.settle()                             # the form's fields and pictures
        self.page.screenshot(path=str(path))

    def queue_and_wait(self, queue, srv, timeout: float = 600) -> dict:
        """Run ``queue()`` (what makes the editor queue its prompt) and return the history entry of the one
        new prompt once it finished (the test fails when none does within ``timeout``)."""
        import pytest
        before = set(srv.get("/history"))
        queue()
        deadline = time.time() + timeout
        while time.time() < deadline:
            new = {k: v for k, v in srv.get("/history").items() if k not in before}
            if new and all(v.get("status", {}).get("completed") or v.get("status", {}).get("status_str") == "error"
                           for v in new.values()):
                assert len(new) == 1, f"{len(new)} prompts were queued: {list(new)}"
                return next(iter(new.values()))
            time.sleep(0.25)
        pytest.fail(self.explain("the editor's prompt did not finish"), pytrace=False)


def mp4s(entry: dict) -> list[dict]:
    """The {filename, subfolder, type} of every MP4 a history entry's outputs name."""
    return [v for out in entry["outputs"].values() for v in out.get("images", []) + out.get("video", [])
            if str(v.get("filename", "")).endswith(".mp4")]
