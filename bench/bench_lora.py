"""LoRA-switch benchmark: per mode (image, video, music) a base without LoRA, with LoRA A, with LoRA B,
without again; the three modes in a row, for two cycles; on the synthetic 1-2 GB models (bench/synthetic.py)
with LoRAs of the public key layouts sized for them (rank 64, written here). Side by side in one run:

- lockn: LockN's loader and LoRA nodes (ComfyUI's default cache);
- core:  ComfyUI's loaders and LoraLoaderModelOnly, ComfyUI's default cache (what a user has without LockN).

    python -m bench.bench_lora [--cycles 2] [--reps 1] [--gpu] [--out bench/out/lora.json]
        [--configs core,lockn] [--gpu-budget-gb G --ram-budget-gb R]

Reports per configuration and prompt: wall time, the reads of base weights from disk (LockN: the
registry's loads of the diffusion models; core: executions of the diffusion-model loader nodes, each of
which reads the file), the time in loader nodes and in the LoRA node (applying a LoRA to a resident
base, against loading that base), and the LoRA file reads.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import give_start_image, machine, synthetic  # noqa: E402
from lockn_testing import graphs  # noqa: E402
from lockn_testing.harness.server import ComfyServer  # noqa: E402

RANK = 64
# mode -> (family, the synthetic base a LoRA is sized for, slots of LoRA A / LoRA B)
MODES = {
    "image": ("flux2", ["flux2_dev_fp8mixed.safetensors"]),
    "video": ("wan22", ["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"]),
    "music": ("ace15", ["acestep_v1.5_turbo.safetensors"]),
}
BASE_LOADERS = {"image": {"12"}, "video": {"95", "96"}, "music": {"104"}}   # core diffusion-model loaders (graphs ids)
STEPS = ["none", "A", "B", "none"]


def lora_name(family: str, which: str, expert: str = "") -> str:
    return f"bench_{family}{'_' + expert if expert else ''}_{which}.safetensors"


def write_loras(models: Path, out: Path) -> Path:
    """LoRAs A and B per family (Wan2.2: per expert) in the public layouts, sized for the synthetic bases."""
    import torch
    from safetensors.torch import save_file

    from lockn_testing.tiny.loras import _LAYOUTS, _modules, make_lora
    folder = out / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    for mode, (family, bases) in MODES.items():
        _, key_prefix, pattern, prefix, layout, dtype = _LAYOUTS[family]
        for base in bases:
            expert = ("high" if "high" in base else "low") if family == "wan22" else ""
            mods = _modules(str(models / "diffusion_models" / base), key_prefix, pattern)
            for i, which in enumerate("AB"):
                path = folder / lora_name(family, which, expert)
                if path.exists():
                    continue
                sd = make_lora(mods, prefix, layout, seed=100 * (1 + list(MODES).index(mode)) + 10 * bool(expert == "low") + i,
                               rank=RANK)
                save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, str(path))
    return out


BUDGETS = (0.0, 0.0)        # LockN's GPU and RAM budgets in GB (--gpu-budget-gb, --ram-budget-gb; 0 = automatic)


def graph(config: str, mode: str, which: str, tag: str) -> dict:
    g = _graph(config, mode, which, tag)
    return graphs.with_residency(g, *BUDGETS) if config == "lockn" and any(BUDGETS) else g


def _graph(config: str, mode: str, which: str, tag: str) -> dict:
    family = MODES[mode][0]
    loader = "lockn" if config == "lockn" else "core"
    g = {"image": lambda: graphs.flux2_t2i(loader=loader, preset="flux2-dev-fp8mixed", steps=1, prefix=f"bl/img{tag}"),
         "video": lambda: graphs.wan22_i2v(loader=loader, preset="wan22-i2v-a14b-fp8", steps=2, split=1, prefix=f"bl/vid{tag}"),
         "music": lambda: graphs.ace15_t2m(loader=loader, preset="ace15-turbo", seconds=1.0, steps=2, top_p=1.0,
                                           prefix=f"bl/mus{tag}")}[mode]()
    if which == "none" and config == "lockn":
        return g
    if family == "wan22":
        slots = {"high": [(lora_name(family, which, "high"), 1.0)], "low": [(lora_name(family, which, "low"), 1.0)]}
    else:
        slots = {"loras": [(lora_name(family, which), 1.0)]}
    if config == "lockn":
        return graphs.with_lora(g, family, **slots)
    if which == "none":
        return g
    return core_lora(g, family, slots)


def core_lora(g: dict, family: str, slots: dict) -> dict:
    """ComfyUI's LoraLoaderModelOnly after each core diffusion-model loader (as the official templates do)."""
    g = {k: {**n, "inputs": dict(n["inputs"])} for k, n in g.items()}
    targets = {"flux2": {"12": slots.get("loras")}, "ace15": {"104": slots.get("loras")},
               "wan22": {"95": slots.get("high"), "96": slots.get("low")}}[family]
    for lid, items in targets.items():
        nid = f"LL{lid}"
        for n in g.values():
            for k, v in n["inputs"].items():
                if isinstance(v, list) and v[0] == lid and v[1] == 0:
                    n["inputs"][k] = [nid, 0]
        g[nid] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": [lid, 0], "lora_name": items[0][0],
                                                                 "strength_model": items[0][1]}}
    return g


def base_loads(rep: dict) -> int:
    return sum(e["loads_from_disk"] for e in rep["entries"] if e["role"] in ("diffusion_model", "high_noise", "low_noise"))


def lora_loads(rep: dict) -> int:
    return sum(e["loads_from_disk"] for e in rep["entries"] if e["role"] == "lora")


def run_config(models: Path, loras: Path, config: str, cycles: int, gpu: bool) -> dict:
    srv = ComfyServer(models, cpu=not gpu, extra_model_dirs=(str(loras),))
    try:
        srv.start()
        give_start_image(srv)
        prompts = []
        for c in range(cycles):
            for mode in MODES:
                for i, which in enumerate(STEPS):
                    g = graph(config, mode, which, f"{c}{i}")
                    before = srv.get("/lockn/residency") if config == "lockn" else None
                    t0 = time.perf_counter()
                    res = srv.run(g, timeout=1800)
                    wall = time.perf_counter() - t0
                    ns = res.node_seconds()
                    p = {"cycle": c + 1, "mode": mode, "lora": which, "seconds": round(wall, 3),
                         "loader_seconds": round(sum(v for k, v in ns.items()
                                                     if g.get(k, {}).get("class_type", "").endswith("Loader")), 3),
                         "lora_node_seconds": round(sum(v for k, v in ns.items() if "LoRA" in g.get(k, {}).get("class_type", "")
                                                        or g.get(k, {}).get("class_type") == "LoraLoaderModelOnly"), 3)}
                    if config == "lockn":
                        after = srv.get("/lockn/residency")
                        p["base_reads"] = base_loads(after) - base_loads(before)
                        p["lora_reads"] = lora_loads(after) - lora_loads(before)
                    else:
                        p["base_reads"] = sum(1 for k in res.executed if k in BASE_LOADERS[mode])
                        p["lora_reads"] = sum(1 for k in res.executed if g.get(k, {}).get("class_type") == "LoraLoaderModelOnly")
                    prompts.append(p)
                    print(f"  {config} c{c + 1} {mode:5} {which:4} {wall:6.2f}s base reads {p['base_reads']} "
                          f"loaders {p['loader_seconds']:.2f}s lora node {p['lora_node_seconds']:.3f}s", flush=True)
        return {"prompts": prompts}
    finally:
        srv.stop()
        shutil.rmtree(srv.base, ignore_errors=True)


def summarize(runs: list[dict]) -> dict:
    out = {}
    for config in sorted({r["config"] for r in runs}):
        ps = [p for r in runs if r["config"] == config for p in r["prompts"]]
        switches = [p for p in ps if p["lora"] in ("A", "B")]
        out[config] = {
            "base_reads_total": sum(p["base_reads"] for p in ps),
            "base_reads_after_first_cycle": sum(p["base_reads"] for p in ps if p["cycle"] > 1),
            "lora_reads_total": sum(p["lora_reads"] for p in ps),
            "median_switch_prompt_s": statistics.median(p["seconds"] for p in switches),
            "median_lora_node_s": statistics.median(p["lora_node_seconds"] for p in switches),
            "cycle_s": {c: round(sum(p["seconds"] for p in ps if p["cycle"] == c), 2) for c in sorted({p["cycle"] for p in ps})},
            "first_load_loader_s": {m: next(p["loader_seconds"] for p in ps if p["mode"] == m) for m in MODES},
        }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--configs", default="core,lockn")
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "lora.json"))
    ap.add_argument("--gpu-budget-gb", type=float, default=0.0, help="LockN's GPU budget (0: automatic)")
    ap.add_argument("--ram-budget-gb", type=float, default=0.0, help="LockN's RAM budget (0: automatic)")
    a = ap.parse_args()
    global BUDGETS
    BUDGETS = (a.gpu_budget_gb, a.ram_budget_gb)
    models = synthetic.ensure(spec="stacks")
    loras = write_loras(models, REPO / "bench" / "out" / f"loras-r{RANK}-{models.name}")
    from lockn_testing.harness import comfyui_path
    version = (comfyui_path() / "comfyui_version.py").read_text().split('"')[1]
    lora_sizes = {p.name: round(p.stat().st_size / 1e9, 3) for p in sorted((loras / "loras").iterdir())}
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "comfyui": version, "rank": RANK,
               "lockn_budgets_gb": {"gpu": BUDGETS[0], "ram": BUDGETS[1]},
               "lora_files_gb": lora_sizes, "runs": []}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(a.reps):
        for config in [c.strip() for c in a.configs.split(",") if c.strip()]:
            print(f"rep {rep + 1}: {config}", flush=True)
            results["runs"].append({"config": config, **run_config(models, loras, config, a.cycles, a.gpu)})
            out.write_text(json.dumps(results, indent=2))
    results["summary"] = summarize(results["runs"])
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({"machine": results["machine"], "comfyui": version, **results["summary"]}, indent=2))


if __name__ == "__main__":
    main()
