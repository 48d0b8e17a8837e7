"""The LockN residency sidebar tab (web/lockn_residency.js) in the real ComfyUI editor, in headless Chromium.

A dedicated ComfyUI server (so the residency state is only this module's: the `srv` and `editor`
fixtures of tests/conftest.py), the editor opened from it, the LockN tab clicked open; then a Flux.2
workflow queued through the HTTP API must show up in the tab live (websocket event, no reload), and the
tab's Evict and Pin buttons must change the server's residency (checked in the tab and at
GET /lockn/residency).

Set LOCKN_SIDEBAR_SCREENSHOT=/some/file.png to keep a picture of the tab with the models listed.
"""
from __future__ import annotations

import os
import time

import pytest

from lockn_testing import graphs
from lockn_testing.harness.browser import TAB

pytestmark = [pytest.mark.comfy, pytest.mark.browser]

FLUX_FILES = {"diffusion_model": "flux2-dev-Q4_K_M.gguf", "text_encoder": "mistral_3_small_flux2_fp4_mixed.safetensors",
              "vae": "flux2-vae.safetensors"}
TAB_BUTTON = ".lockn-residency-tab-button"      # the sidebar gives each tab's button the class "<id>-tab-button"


def route_entries(srv) -> dict[str, dict]:
    return {e["name"]: e for e in srv.get("/lockn/residency")["entries"]}


def test_residency_tab_live_evict_and_pin(srv, editor):
    t0 = time.time()
    page = editor.page
    page.goto(srv.url)
    editor.wait_for("() => window.comfyAPI && document.querySelector('.graph-canvas-container, #graph-canvas')",
                    "the ComfyUI editor to load", timeout=45_000)
    editor.wait_for(f"() => document.querySelector('{TAB_BUTTON}') !== null",
                    "the LockN sidebar button (is web/lockn_residency.js served and registering its tab?)")
    assert page.locator(TAB).count() == 0, "the LockN tab is open before its button was clicked"
    page.click(TAB_BUTTON)

    # opened: loaded from GET /lockn/residency, nothing resident yet
    editor.wait_for("() => document.querySelector('[data-testid=lockn-residency][data-entries=\"0\"] [data-testid=lockn-empty]')",
                    "the LockN tab to render with no entries")
    assert srv.get("/lockn/residency")["entries"] == []
    assert page.locator("[data-testid=lockn-row]").count() == 0
    for meter in ("lockn-gpu", "lockn-ram"):
        assert page.locator(f"[data-testid={meter}]").is_visible(), f"no {meter} meter in the tab"

    # a workflow queued through the API (not the editor): the tab updates live from the websocket event
    srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m"))
    editor.wait_for("names => names.every(n => document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"]`))",
                    f"rows for {sorted(FLUX_FILES.values())} after the workflow ran (no reload)",
                    arg=list(FLUX_FILES.values()))
    assert page.locator("[data-testid=lockn-row]").count() == 3
    on_server = route_entries(srv)
    for role, name in FLUX_FILES.items():
        tier = on_server[name]["tier"]
        assert tier in ("gpu", "ram"), f"{name} is {tier} right after the run"
        # the rows appear with the load's event; the prompt's end (settled by that GET) sends the final
        # tiers in a second event, which the browser may not have rendered yet
        editor.wait_row(name, f"{name} to show tier {tier!r} as on the server, from the prompt end's event", tier=tier)
        row = editor.row(name)
        assert row.locator("[data-testid=lockn-tier]").inner_text().strip() == tier
        assert role in row.inner_text() and "flux2" in row.inner_text()

    # Evict the diffusion model from the tab: dropped in the tab and on the server
    dit, vae, te = FLUX_FILES["diffusion_model"], FLUX_FILES["vae"], FLUX_FILES["text_encoder"]
    editor.row(dit).locator("[data-testid=lockn-evict]").click()
    editor.wait_row(dit, f"{dit} to show tier 'dropped' after its Evict button", tier="dropped")
    assert editor.row(dit).locator("[data-testid=lockn-tier]").inner_text().strip() == "dropped"
    assert route_entries(srv)[dit]["tier"] == "dropped"
    assert {route_entries(srv)[n]["tier"] for n in (vae, te)} <= {"gpu", "ram"}, "Evict dropped other models too"

    # Pin the VAE from the tab: pinned in the tab and on the server
    assert route_entries(srv)[vae]["pinned"] is False
    editor.row(vae).locator("[data-testid=lockn-pin]").click()
    editor.wait_row(vae, f"{vae} to show as pinned after its Pin button", pinned="true")
    assert editor.row(vae).locator("[data-testid=lockn-pinned]").is_visible()
    assert editor.row(vae).locator("[data-testid=lockn-pin]").inner_text().strip() == "Unpin"
    assert route_entries(srv)[vae]["pinned"] is True
    assert route_entries(srv)[te]["pinned"] is False
    if os.environ.get("LOCKN_SIDEBAR_SCREENSHOT"):
        page.screenshot(path=os.environ["LOCKN_SIDEBAR_SCREENSHOT"])

    # a change made by another client (HTTP API) reaches the open tab through the websocket event too
    status, body = srv.post("/lockn/residency/pin", {"id": route_entries(srv)[vae]["id"], "pinned": False})
    assert status == 200, body
    editor.wait_row(vae, f"{vae} to show as unpinned after POST /lockn/residency/pin from outside", pinned="false")

    errors = editor.extension_errors()
    assert not errors, "console errors from the LockN extension:\n" + "\n".join(errors)
    assert time.time() - t0 < 60, f"the browser part took {time.time() - t0:.0f}s"


def test_the_editors_free_button_releases_lockn_models(srv, editor):
    """The editor's "Unload Models and Execution Cache" button runs the frontend command of that name,
    which posts /api/free (not /free) with unload_models and free_memory: LockN lets go of every model,
    the tab says so, and the next run reads them from disk again."""
    page = editor.page
    if not page.url.startswith(srv.url):
        page.goto(srv.url)
    editor.wait_for("() => window.app && window.app.extensionManager && window.app.extensionManager.command",
                    "the editor's command registry", timeout=45_000)
    srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", prefix="free-button"))
    before = route_entries(srv)
    assert before and any(e["tier"] in ("gpu", "ram") for e in before.values())
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/free")) as req:
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Memory.UnloadModelsAndExecutionCache')")
    assert req.value.url == f"{srv.url}/api/free", req.value.url
    deadline = time.time() + 20
    while any(e["tier"] != "dropped" for e in route_entries(srv).values()) and time.time() < deadline:
        time.sleep(0.2)
    after = route_entries(srv)
    assert all(e["tier"] == "dropped" for e in after.values()), {n: e["tier"] for n, e in after.items()}
    if page.locator(TAB).count():
        editor.wait_row(FLUX_FILES["diffusion_model"], "the tab to show the dropped model", tier="dropped")
    srv.run(graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", prefix="free-button-again"))
    again = route_entries(srv)
    assert all(again[n]["loads_from_disk"] == before[n]["loads_from_disk"] + 1 for n in FLUX_FILES.values())


def test_the_tab_shows_which_loras_the_base_carries(srv, editor):
    """A LoRA applied by LockN's LoRA node shows on the base's row (name and strength) and the LoRA's own
    row says which base carries it; a run without it clears the line."""
    from lockn_testing.tiny.loras import FLUX_TURBO
    page = editor.page
    if not page.url.startswith(srv.url):
        page.goto(srv.url)
    editor.wait_for(f"() => document.querySelector('{TAB_BUTTON}') !== null", "the LockN sidebar button")
    if page.locator(TAB).count() == 0:
        page.locator(TAB_BUTTON).first.click()
    base = graphs.flux2_t2i(loader="lockn", preset="flux2-dev-q4_k_m", prefix="lora-tab")
    srv.run(graphs.with_lora(base, "flux2", loras=[(FLUX_TURBO, 0.75)]))
    dit = FLUX_FILES["diffusion_model"]
    editor.wait_for("n => { const r = document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"] [data-testid=lockn-loras]`);"
                    " return r && r.textContent.includes('× 0.75'); }", f"the LoRA line on {dit}'s row", arg=dit)
    assert FLUX_TURBO in editor.row(dit).locator("[data-testid=lockn-loras]").inner_text()
    assert dit in editor.row(FLUX_TURBO).locator("[data-testid=lockn-applied-to]").inner_text()
    srv.run(base)                                        # the base alone: its weights carry no LoRA now
    editor.wait_for("n => document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"]`) &&"
                    " !document.querySelector(`[data-testid=lockn-row][data-name=\"${n}\"] [data-testid=lockn-loras]`)",
                    f"the LoRA line on {dit}'s row to go after a run without it", arg=dit)
    errors = editor.extension_errors()
    assert not errors, "console errors from the LockN extension:\n" + "\n".join(errors)
