// LockN Gen: the "LockN" sidebar tab of the ComfyUI editor. It shows which models LockN keeps
// resident (GPU, RAM or dropped) against the budgets, live, and lets you pin or evict them. The RAM meter
// counts private memory, as the RAM budget does; the part of a model that stays mapped from its file (a
// GGUF's quantized weights: the kernel can drop and re-read those pages) is shown apart.
//
// Data: GET /lockn/residency when the tab opens, then every "lockn.residency" websocket event (the
// server sends the same report whenever residency changes) and the report each POST answers with.
// Plain DOM, no build step. Colours come from ComfyUI's CSS variables, so light and dark themes fit.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const TAB_ID = "lockn-residency";
const EVENT = "lockn.residency";
const GB = 1e9;

const CSS = `
.lockn-res { padding: 8px 10px; color: var(--fg-color); font-size: 12px; display: flex; flex-direction: column; gap: 8px;
  height: 100%; overflow-y: auto; box-sizing: border-box; }
.lockn-res h3 { margin: 0; font-size: 14px; display: flex; justify-content: space-between; align-items: center; }
.lockn-res button { background: var(--comfy-input-bg); color: var(--input-text, var(--fg-color)); cursor: pointer;
  border: 1px solid var(--border-color); border-radius: 4px; padding: 1px 6px; font-size: 11px; }
.lockn-res button:hover:not(:disabled) { border-color: var(--fg-color); }
.lockn-res button:disabled { opacity: 0.5; cursor: default; }
.lockn-res .lockn-muted { color: var(--descrip-text); }
.lockn-res .lockn-error { color: var(--error-text, #e05252); }
.lockn-meter { display: grid; grid-template-columns: 3em 1fr auto; gap: 6px; align-items: center; }
.lockn-meter .lockn-muted { grid-column: 2 / 4; }
.lockn-bar { height: 8px; border-radius: 4px; background: var(--comfy-input-bg); border: 1px solid var(--border-color);
  overflow: hidden; }
.lockn-bar > div { height: 100%; background: var(--p-primary-color, #3b82f6); }
.lockn-bar.lockn-over > div { background: var(--error-text, #e05252); }
.lockn-warn { color: var(--error-text, #e05252); margin: 0; padding-left: 16px; }
.lockn-row { border: 1px solid var(--border-color); border-radius: 6px; padding: 6px; background: var(--comfy-menu-bg);
  display: flex; flex-direction: column; gap: 3px; }
.lockn-row .lockn-name { font-weight: 600; word-break: break-all; }
.lockn-row .lockn-line { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.lockn-badge { border-radius: 8px; padding: 0 7px; font-size: 11px; font-weight: 600; color: #fff; }
.lockn-tier-gpu { background: #2e9e5b; }
.lockn-tier-ram { background: #c98a14; }
.lockn-tier-dropped { background: #777; }
.lockn-pinned { font-size: 11px; font-weight: 600; }
.lockn-pinned .pi { font-size: 10px; }
`;

let report = null;        // the last residency report (null until loaded)
let error = null;         // the last fetch/POST error, shown at the top of the tab
let busy = false;         // a POST is in flight: buttons are disabled
const views = new Set();  // mounted tab elements (the sidebar re-mounts the tab whenever it opens)

// sizes in GB; small files (the test models, VAEs) in MB so they do not all read "0.00 GB"
const fmtSize = (bytes) => (bytes >= GB / 10 ? (bytes / GB).toFixed(2) + " GB" : (bytes / 1e6).toFixed(1) + " MB");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.onclick = v;
    else if (k === "text") node.textContent = v;
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function meter(label, used, budget, testid, { title = "", mapped = 0 } = {}) {
  const pct = budget ? Math.min(100, (100 * used) / budget) : 0;
  const bar = el("div", { class: "lockn-bar" + (budget && used > budget ? " lockn-over" : "") }, el("div"));
  bar.firstChild.style.width = pct + "%";
  return el("div", { class: "lockn-meter", "data-testid": testid,
      title: (budget ? `${pct.toFixed(0)}% of the budget` : "no LockN budget") + (title ? `. ${title}` : "") },
    el("span", { text: label }), bar,
    el("span", { text: budget ? `${fmtSize(used)} / ${fmtSize(budget)}` : `${fmtSize(used)} (no budget)` }),
    mapped ? el("span", { class: "lockn-muted", "data-testid": `${testid}-mapped`,
      text: `+ ${fmtSize(mapped)} mapped from model files, not counted (reclaimable)` }) : null);
}

// The RAM meter: what the RAM budget counts (private bytes; of both tiers where ComfyUI computes in
// system RAM), and the mapped part of the same tiers apart. Reports of before mapped_bytes: whole sizes.
function ramMeter(totals, budget) {
  const both = !!totals.ram_budget_counts_gpu;
  const used = totals.ram_budget_used_bytes ?? totals.ram_bytes ?? 0;
  const mapped = (totals.ram_mapped_bytes || 0) + (both ? totals.gpu_mapped_bytes || 0 : 0);
  return meter("RAM", used, budget, "lockn-ram", { mapped,
    title: "Private memory, which the kernel cannot reclaim" + (both ? ", of both tiers (ComfyUI computes in system RAM here)" : "") });
}

// "4.28 GB (3.84 GB mapped from the file, reclaimable)"; a dropped model maps nothing
const mappedOf = (e) => (e.tier === "dropped" ? 0 : e.mapped_bytes || 0);
function sizeText(e) {
  const text = fmtSize(e.bytes || 0);
  return mappedOf(e) ? `${text} (${fmtSize(mappedOf(e))} mapped from the file, reclaimable)` : text;
}

function row(e) {
  const pin = el("button", { "data-testid": "lockn-pin", disabled: busy, title: e.pinned ? "Let the policy evict it again" : "Never evict it by policy",
    onclick: () => post("/lockn/residency/pin", { id: e.id, pinned: !e.pinned }) }, e.pinned ? "Unpin" : "Pin");
  const toRam = el("button", { "data-testid": "lockn-to-ram", disabled: busy || e.tier !== "gpu", title: "Move it to system RAM",
    onclick: () => post("/lockn/residency/evict", { id: e.id, to: "ram" }) }, "To RAM");
  const evict = el("button", { "data-testid": "lockn-evict", disabled: busy || e.tier === "dropped", title: "Release it (the next use reloads from disk)",
    onclick: () => post("/lockn/residency/evict", { id: e.id, to: "dropped" }) }, "Evict");
  return el("div", { class: "lockn-row", "data-testid": "lockn-row", "data-id": e.id, "data-name": e.name, "data-tier": e.tier,
      "data-pinned": String(!!e.pinned), title: (e.files || []).join("\n") || e.name },
    el("div", { class: "lockn-name", text: e.name }),
    el("div", { class: "lockn-line" },
      el("span", { class: `lockn-badge lockn-tier-${e.tier}`, "data-testid": "lockn-tier", text: e.tier }),
      el("span", { "data-testid": "lockn-size", "data-mapped": mappedOf(e), text: sizeText(e),
        title: mappedOf(e) ? "The mapped part stays in the kernel's page cache: it can drop those pages under pressure and " +
          "read them again from the file, so LockN's RAM budget counts only the rest" : undefined }),
      e.pinned ? el("span", { class: "lockn-pinned", "data-testid": "lockn-pinned" }, el("i", { class: "pi pi-thumbtack" }), " pinned") : null,
      e.host_pinned_bytes ? el("span", { class: "lockn-muted", title: "Page-locked by ComfyUI for fast copies to the GPU",
        text: `${fmtSize(e.host_pinned_bytes)} page-locked` }) : null,
      e.held_after_drop ? el("span", { class: "lockn-muted", "data-testid": "lockn-held",
        title: "Dropped, but ComfyUI's output cache still refers to it; its memory is released after the current prompt",
        text: "releasing…" }) : null),
    (e.loras || []).length ? el("div", { class: "lockn-line", "data-testid": "lockn-loras",
      title: "LoRAs that the loaded weights carry now (applied by a LockN LoRA node)",
      text: "LoRA: " + e.loras.map((l) => `${l.name} × ${l.strength}`).join(", ") }) : null,
    (e.applied_to || []).length ? el("div", { class: "lockn-line lockn-muted", "data-testid": "lockn-applied-to",
      text: "on " + e.applied_to.join(", ") }) : null,
    el("div", { class: "lockn-line lockn-muted" },
      el("span", { text: `${e.family} · ${e.role}${e.device ? " · " + e.device : ""}` }),
      el("span", { text: `loads ${e.loads_from_disk ?? 0} · hits ${e.hits ?? 0}` })),
    el("div", { class: "lockn-line" }, pin, toRam, evict));
}

function draw(root) {
  const refresh = el("button", { "data-testid": "lockn-refresh", title: "Reload from the server", onclick: load }, "↻");
  const body = [el("h3", {}, el("span", { text: "LockN residency" }), refresh)];
  if (error) body.push(el("div", { class: "lockn-error", "data-testid": "lockn-error", text: error }));
  if (!report) {
    body.push(el("div", { class: "lockn-muted", text: "Loading…" }));
  } else {
    const { entries = [], budgets = {}, totals = {}, warnings = [] } = report;
    body.push(meter("GPU", totals.gpu_bytes || 0, budgets.gpu_bytes, "lockn-gpu"),
      ramMeter(totals, budgets.ram_bytes),
      el("div", { class: "lockn-muted", text: `${entries.length} model(s) · dropped ${fmtSize(totals.dropped_bytes || 0)}` +
        (report.pending_evictions ? ` · ${report.pending_evictions} eviction(s) wait for the running prompt` : "") }));
    if (warnings.length) body.push(el("ul", { class: "lockn-warn", "data-testid": "lockn-warnings" }, ...warnings.map((w) => el("li", { text: w }))));
    if (!entries.length) body.push(el("div", { class: "lockn-muted", "data-testid": "lockn-empty", text: "No models loaded through LockN yet." }));
    body.push(...entries.map(row));
  }
  root.replaceChildren(el("div", { class: "lockn-res", "data-testid": "lockn-residency", "data-entries": report ? report.entries.length : "" }, ...body));
}

function redraw() {
  for (const root of views) {
    if (root.isConnected) draw(root);
    else views.delete(root);
  }
}

function update(next) {
  if (next && Array.isArray(next.entries)) {
    report = next;
    error = null;
  }
  redraw();
}

async function load() {
  try {
    const res = await api.fetchApi("/lockn/residency");
    if (!res.ok) throw new Error(`GET /lockn/residency: HTTP ${res.status}`);
    update(await res.json());
  } catch (e) {
    error = String(e.message || e);
    redraw();
  }
}

async function post(path, body) {
  busy = true;
  redraw();
  try {
    const res = await api.fetchApi(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error || `${path}: HTTP ${res.status}`);
    busy = false;
    update(data.residency);
  } catch (e) {
    busy = false;
    error = String(e.message || e);
    redraw();
  }
}

app.registerExtension({
  name: "LockN.Residency",
  setup() {
    document.head.append(el("style", { id: "lockn-residency-css" }, CSS));
    api.addEventListener(EVENT, (ev) => update(ev.detail));
    app.extensionManager.registerSidebarTab({
      id: TAB_ID,
      icon: "pi pi-server",
      title: "LockN",
      tooltip: "LockN Gen residency",
      type: "custom",
      render(root) {
        views.add(root);
        draw(root);
        load();
      },
      destroy() {
        views.clear();
      },
    });
  },
});
