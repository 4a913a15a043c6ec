# bench/gpu_check.sh's step 5: reads what steps 1-4 left in the work directory (the benches'
# key=value lines, bench/generate.sh's output, ctest's JUnit file) and writes every figure to
# OUT/gpu_check.json and OUT/gpu_check.md, printing the Markdown. A row that was not measured says
# why instead of a number. Exit 1 when a GPU test failed or skipped on the GPU (or, in the dry run,
# did anything but skip for want of a GPU), or a row is missing.
# Usage: gpu_check_report.py WORK_DIR OUT_DIR gpu|dry-run
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

PEAK_BF16 = 989e12  # H100/H200 SXM dense bf16, the vendor's data sheet
TRAIN_ROWS = [("train_kiln", "kiln"), ("train_kiln_fp8", "kiln + FP8 (train.fp8)"),
              ("train_eager", "PyTorch eager"), ("train_compile", "PyTorch torch.compile")]
RECIPE_NOTE = ("nanochat's current recipe model (issue 22: sliding windows, value embeddings, "
               "MuonAdamW) is not in kiln yet: no row")


def read(w, name):
    p = os.path.join(w, name)
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def kv_line(text, prefix="impl="):
    for line in text.splitlines():
        if line.startswith(prefix):
            return dict(t.split("=", 1) for t in line.split() if "=" in t)
    return None


def why_not(text):
    lines = [l for l in text.splitlines() if l.startswith(("not measured", "failed"))]
    return "; ".join(lines)[:400] or "not measured: the step did not run"


def tests(w, mode):
    out = {"summary": "", "ok": False, "cases": [], "notes": []}
    ct = read(w, "ctest.txt")
    m = [l.strip() for l in ct.splitlines() if re.search(r"tests passed|tests failed", l)]
    out["summary"] = m[-1] if m else "no ctest summary line"
    rc = read(w, "ctest_rc.txt").strip()
    xml = os.path.join(w, "ctest_gpu.xml")
    if os.path.exists(xml):
        for tc in ET.parse(xml).getroot().iter("testcase"):
            text = "".join((e.text or "") for e in tc.iter("system-out"))
            skipped = tc.get("status") == "skipped" or tc.find("skipped") is not None
            failed = tc.get("status") == "fail" or tc.find("failure") is not None
            status = "skipped" if skipped else "failed" if failed else "passed"
            reason = next((l.strip() for l in text.splitlines() if "needs a" in l), "")
            out["cases"].append({"name": tc.get("name"), "status": status, "skip_reason": reason})
            for l in text.splitlines():
                if l.startswith(("SDPA kernel:", "bf16 autocast:")):
                    out["notes"].append(l.strip())
    cases = out["cases"]
    if mode == "gpu":
        out["ok"] = rc == "0" and bool(cases) and all(c["status"] == "passed" for c in cases)
    else:  # on the CPU every one of them must skip, and only for want of a GPU
        out["ok"] = rc == "0" and bool(cases) and all(
            c["status"] == "skipped" and re.search("CUDA|GPU", c["skip_reason"]) for c in cases)
    return out


def train(w, shape):
    L, C, H, T, V, B, warmup, steps = shape
    rows, by = [], {}
    for key, label in TRAIN_ROWS:
        r = kv_line(read(w, key + ".txt"))
        row = {"impl": label}
        if r is None:
            row["not_measured"] = why_not(read(w, key + ".txt"))
        else:
            fpt = float(r.get("flops_per_token", "nan"))
            tps = float(r["tok_per_s"])
            row.update(tok_per_s=tps, median_step_ms=float(r["median_step_ms"]), flops_per_token=fpt,
                       peak_mem_gb=float(r["peak_mem_gb"]) if float(r["peak_mem_gb"]) >= 0 else None,
                       losses=[float(x) for x in r["losses"].split(",")], params=int(r["params"]),
                       fwd_ms=float(r["fwd_ms"]), bwd_ms=float(r["bwd_ms"]), opt_ms=float(r["opt_ms"]))
            row["mfu_pct"] = 100.0 * fpt * tps / PEAK_BF16
            row["dtype"] = r.get("dtype", "?")
            row["impl"] = f"{label} ({'bf16 autocast' if row['dtype'] == 'bf16' else row['dtype']})"
            by[key] = row
        rows.append(row)
    eager = by.get("train_eager")
    comp = by.get("train_compile")
    for key, row in by.items():
        if eager and key != "train_eager":
            n = min(20, len(row["losses"]), len(eager["losses"]))
            row["max_abs_loss_diff_vs_eager_first20"] = max(abs(a - b) for a, b in
                                                            zip(row["losses"][:n], eager["losses"][:n]))
        if comp:
            row["speed_vs_compile"] = row["tok_per_s"] / comp["tok_per_s"]
    return {"shape": {"layers": L, "width": C, "heads": H, "seq_len": T, "vocab": V, "batch": B,
                      "warmup_steps": warmup, "timed_steps": steps},
            "peak_flops": PEAK_BF16, "rows": rows, "nanochat_recipe": RECIPE_NOTE}


def decode(w):
    text = read(w, "decode.txt")
    get = lambda pat: (lambda m: float(m.group(1)) if m else None)(re.search(pat + r".*?tok_per_s=(\d+)", text))
    out = {"dtype": "fp32 (the engine's dtype on CUDA; PyTorch's loop likewise)", "rows": []}
    if "kiln cached B=1" not in text:
        out["not_measured"] = why_not(text)
        return out
    m = re.search(r"prompt (\d+), new (\d+)", text)
    out["prompt_tokens"], out["new_tokens"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    out["prefill_b16"] = {"kiln": get("kiln prefill B=16"), "pytorch": get("pytorch prefill B=16")}
    for b in (1, 16):
        k, u, p = get(f"kiln cached B={b} "), get(f"kiln uncached B={b} "), get(f"pytorch cached B={b} ")
        out["rows"].append({"batch": b, "kiln_kv_cache": k, "kiln_no_cache": u, "pytorch_kv_cache": p,
                            "kiln_over_pytorch": k / p if k and p else None})
    m = re.search(r"kiln cached == uncached greedy ids: (\w+)", text)
    out["kiln_cached_equals_uncached_ids"] = m.group(1) if m else None
    m = re.search(r"identical in kiln and PyTorch: (\w+)", text)
    out["greedy_ids_equal_pytorch"] = m.group(1) if m else None
    return out


def fmt(v, f="{:,.0f}"):
    return "n/a" if v is None else f.format(v)


def markdown(rep):
    s, t, d = rep["shape_text"], rep["train"], rep["decode"]
    dry = rep["mode"] != "gpu"
    md = [f"# kiln GPU check ({'DRY RUN on the CPU at toy sizes: not GPU figures' if dry else 'GPU'})", ""]
    md.append(f"device: {rep['device']}; build: {rep['build_s']}; torch: {rep.get('torch', '?')}")
    md += ["", "## GPU tests", "", f"`{rep['tests']['summary']}`", ""]
    for c in rep["tests"]["cases"]:
        md.append(f"- {c['name']}: {c['status']}" + (f" ({c['skip_reason']})" if c["skip_reason"] else ""))
    md += [f"- {n}" for n in rep["tests"]["notes"]]
    md += ["", f"## Training: {s}", "",
           "| implementation | tok/s | MFU (of 989 TFLOP/s) | peak memory | step | vs torch.compile | "
           "max abs loss diff vs eager (first 20 steps) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in t["rows"]:
        if "not_measured" in r:
            md.append(f"| {r['impl']} | {r['not_measured']} | | | | | |")
            continue
        mem = "n/a (CPU)" if r["peak_mem_gb"] is None else f"{r['peak_mem_gb']:.1f} GB"
        mfu = "n/a (CPU)" if dry else f"{r['mfu_pct']:.1f}%"
        md.append(f"| {r['impl']} | {r['tok_per_s']:,.0f} | {mfu} | {mem} | {r['median_step_ms']:.1f} ms | "
                  f"{fmt(r.get('speed_vs_compile'), '{:.2f}x')} | "
                  f"{fmt(r.get('max_abs_loss_diff_vs_eager_first20'), '{:.4f}')} |")
    md += ["", t["nanochat_recipe"] + ".", ""]
    md += [f"## Decode: {d['dtype']}, random weights of the same shape, prompt {d.get('prompt_tokens')} tokens, "
           f"{d.get('new_tokens')} new, greedy", ""]
    if "not_measured" in d:
        md.append(d["not_measured"])
    else:
        md += ["| batch | kiln engine (KV cache) | kiln without cache | PyTorch + KV cache | kiln / PyTorch |",
               "|---:|---:|---:|---:|---:|"]
        for r in d["rows"]:
            md.append(f"| {r['batch']} | {fmt(r['kiln_kv_cache'])} | {fmt(r['kiln_no_cache'])} | "
                      f"{fmt(r['pytorch_kv_cache'])} | {fmt(r['kiln_over_pytorch'], '{:.2f}x')} |")
        md += ["", f"prefill at batch 16: kiln {fmt(d['prefill_b16']['kiln'])} tok/s, PyTorch "
                   f"{fmt(d['prefill_b16']['pytorch'])} tok/s; kiln cached = uncached greedy ids: "
                   f"{d['kiln_cached_equals_uncached_ids']}; greedy ids equal PyTorch's: {d['greedy_ids_equal_pytorch']}"]
    return "\n".join(md) + "\n"


def main():
    w, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    shape = [int(x) for x in (read(w, "meta_shape.txt").split() or [0] * 8)]
    L, C, H, T, V, B, warmup, steps = shape
    rep = {"mode": mode, "note": read(w, "meta_note.txt").strip(),
           "device": read(w, "meta_gpu.txt").strip() or "cpu",
           "build_s": (read(w, "meta_build_s.txt").strip() + " s") if read(w, "meta_build_s.txt") else "existing build",
           "shape_text": f"{L} layers, {C} wide, {H} heads, vocab {V}; batch {B} x {T} tokens, {steps} timed steps "
                         f"after {warmup} warm-up, synthetic tokens, the same initial weights"
                         + (" (d20)" if (L, C, T, V) == (20, 1280, 2048, 65536) else ""),
           "tests": tests(w, mode), "train": train(w, shape), "decode": decode(w)}
    try:
        import torch
        rep["torch"] = torch.__version__
    except ImportError:
        pass
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(rep, f, indent=1)
    md = markdown(rep)
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write(md)
    print(md)
    missing = [r["impl"] for r in rep["train"]["rows"] if "not_measured" in r]
    if "not_measured" in rep["decode"]:
        missing.append("decode")
    ok = rep["tests"]["ok"] and not missing
    if not ok:
        print(f"gpu_check: NOT OK: tests ok={rep['tests']['ok']}, rows not measured: {missing or 'none'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
