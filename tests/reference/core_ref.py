"""PyTorch reference of nanochat's CORE metric, written from nanochat/core_eval.py and
scripts/base_eval.py (karpathy/nanochat 92d63d4), independent of kiln's C++: the bundle through
yaml/csv/json, Python's own `random` for the shuffle and the few-shot draw, nanochat's Jinja
templates rendered by jinja2, tokens from bpe_reference.py (the checkpoint's tokenizer.json
merges), the model from gpt_ref.py (the checkpoint's safetensors), one example per forward.

Two rules are kiln's where nanochat has none (both documented in README.md, CORE section):
  - crop: a row longer than the model's positions (nanochat's GPT: its 10 x sequence_len rotary
    table) keeps its last tokens, the span shifted, as nanochat's crop; a span that would then
    start at 0 starts at 1 (nanochat asserts);
  - a task cut by --max-per-task below num_fewshot + 1 items uses num_fewshot = items - 1.

Usage:
  core_ref.py run STEP_DIR BUNDLE MAX_PER_TASK OUT.jsonl    per-example JSONL (kiln's --dump-examples
                                                            format) + a last line {"core": ...}
  core_ref.py compare REF.jsonl KILN_DUMP.jsonl KILN_CORE.json
                                                            ids, spans, losses (<= 1e-5 rel), verdicts
  core_ref.py bench STEP_DIR BUNDLE MAX_PER_TASK            examples/s of the reference
Needs: torch, safetensors, regex, jinja2, pyyaml.
"""
import csv
import json
import math
import os
import random
import sys
import time

import torch
import yaml
from jinja2 import Template

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_reference import chunks, encode_chunk  # noqa: E402
from sample_bpb_ref import load as load_gpt  # noqa: E402

# ---- nanochat's templates (core_eval.py render_prompts_*) --------------------------------------
MC = """
{%- for example in fewshot_examples -%}
{{ example.query }}{{ continuation_delimiter }}{{ example.choices[example.gold] }}

{% endfor -%}
{{ item.query }}{{ continuation_delimiter }}{{ choice }}""".strip()
SCHEMA = """
{%- for example in fewshot_examples -%}
{{ example.context_options[example.gold] }}{{ continuation_delimiter }}{{ example.continuation }}

{% endfor -%}
{{ context }}{{ continuation_delimiter }}{{ item.continuation }}""".strip()
LM = """
{%- for example in fewshot_examples -%}
{{ example.context | trim }}{{ continuation_delimiter }}{{ example.continuation }}

{% endfor -%}
{{ item.context | trim }}{{ continuation_delimiter }}{% if include_continuation %}{{ item.continuation }}{% endif %}""".strip()


def render(task_type, item, delim, fewshot):
    ctx = dict(fewshot_examples=fewshot, continuation_delimiter=delim, item=item)
    if task_type == "multiple_choice":
        t = Template(MC)
        return [t.render(choice=c, **ctx) for c in item["choices"]]
    if task_type == "schema":
        t = Template(SCHEMA)
        return [t.render(context=c, **ctx) for c in item["context_options"]]
    t = Template(LM)
    return [t.render(include_continuation=False, **ctx).strip(), t.render(include_continuation=True, **ctx)]


class Tok:
    def __init__(self, path):
        j = json.load(open(path))
        self.rank = {tuple(m): r for r, m in enumerate(j["merges"])}
        self.bos = j["special_tokens"]["<|bos|>"]
        self.vocab_size = j["vocab_size"]
        self.cache = {}  # chunk bytes -> ids (bpe_reference.encode, one chunk at a time, memoised)

    def encode(self, text):
        ids = []
        for c in chunks(text):
            if c not in self.cache:
                self.cache[c] = encode_chunk(c, self.rank)
            ids.extend(self.cache[c])
        return ids

    def __call__(self, texts):
        return [[self.bos] + self.encode(t) for t in texts]


def common_length(seqs, direction):
    n = min(len(s) for s in seqs)
    idx = range(n) if direction == "left" else range(-1, -n - 1, -1)
    for i, k in enumerate(idx):
        if not all(s[k] == seqs[0][k] for s in seqs):
            return i
    return n


TOKENIZER_SECONDS = [0.0]  # time spent in bpe_reference (pure Python), for the bench


def example(idx, model, tok, data, task_type, k, delim, max_len):
    item = data[idx]
    fewshot_idx = []
    if k > 0:
        rng = random.Random(1234 + idx)
        fewshot_idx = rng.sample([i for i in range(len(data)) if i != idx], k)
    prompts = render(task_type, item, delim, [data[i] for i in fewshot_idx])
    t0 = time.time()
    tokens = tok(prompts)
    TOKENIZER_SECONDS[0] += time.time() - t0
    if task_type == "multiple_choice":
        s = common_length(tokens, "left")
        starts, ends = [s] * len(tokens), [len(t) for t in tokens]
    elif task_type == "schema":
        suf = common_length(tokens, "right")
        ends = [len(t) for t in tokens]
        starts = [e - suf for e in ends]
    else:
        without, with_ = tokens
        assert len(without) < len(with_) and with_[:len(without)] == without
        tokens, starts, ends = [with_], [len(without)], [len(with_)]
    for i, t in enumerate(tokens):
        if len(t) > max_len:
            crop = len(t) - max_len
            tokens[i] = t[-max_len:]
            starts[i] = max(1, starts[i] - crop)
            ends[i] -= crop
    T = max(len(t) for t in tokens)
    ids = torch.full((len(tokens), T), tok.bos, dtype=torch.long)
    for i, t in enumerate(tokens):
        ids[i, :len(t)] = torch.tensor(t)
    with torch.no_grad():
        logits = model(ids)
    B = ids.size(0)
    targets = torch.roll(ids, shifts=-1, dims=1)
    losses = torch.nn.functional.cross_entropy(logits.view(B * T, -1), targets.view(B * T), reduction="none").view(B, T)
    losses[:, -1] = float("nan")
    pred = logits.argmax(dim=-1)
    means = [losses[i, s - 1:e - 1].mean().item() for i, (s, e) in enumerate(zip(starts, ends))]
    out = dict(fewshot=fewshot_idx, rows=tokens, start=starts, end=ends, losses=means)
    if task_type == "language_modeling":
        s, e = starts[0], ends[0]
        out["correct"] = bool(torch.all(pred[0, s - 1:e - 1] == ids[0, s:e]).item())
    else:
        p = means.index(min(means))
        out["pred"], out["correct"] = p, p == item["gold"]
    return out


def run(step_dir, bundle, max_per_task, out_path=None):
    tok = Tok(os.path.join(step_dir, "tokenizer.json"))
    meta = json.load(open(os.path.join(step_dir, "meta.json")))
    cfg = meta["config"]
    seq_len = int(next(l for l in cfg[cfg.index("model:"):].splitlines() if l.strip().startswith("seq_len:")).split(":")[1])
    max_len = 10 * seq_len  # nanochat's GPT: its rotary table; kiln crops there
    model = load_gpt(step_dir, tok.vocab_size, positions=max_len)
    tasks = yaml.safe_load(open(os.path.join(bundle, "core.yaml"), encoding="utf-8"))["icl_tasks"]
    baselines = {r["Eval Task"]: float(r["Random baseline"])
                 for r in csv.DictReader(open(os.path.join(bundle, "eval_meta_data.csv"), encoding="utf-8"))}
    lines, centered, n_total, t0 = [], {}, 0, time.time()
    for task in tasks:
        label, task_type = task["label"], task["icl_task_type"]
        k, delim = task["num_fewshot"][0], task.get("continuation_delimiter", " ")
        with open(os.path.join(bundle, "eval_data", task["dataset_uri"]), encoding="utf-8") as f:
            data = [json.loads(l.strip()) for l in f]
        for i, d in enumerate(data):
            d["_line"] = i + 1
        random.Random(1337).shuffle(data)
        if max_per_task > 0:
            data = data[:max_per_task]
        k = min(k, len(data) - 1)
        correct = 0
        for idx in range(len(data)):
            r = example(idx, model, tok, data, task_type, k, delim, max_len)
            correct += r["correct"]
            lines.append(dict(task=label, index=idx, line=data[idx]["_line"], **r))
        acc = correct / len(data)
        b = baselines[label]
        centered[label] = (acc - 0.01 * b) / (1.0 - 0.01 * b)
        n_total += len(data)
    core = sum(centered.values()) / len(centered)
    secs = time.time() - t0
    if out_path:
        with open(out_path, "w") as f:
            for l in lines:
                f.write(json.dumps(l) + "\n")
            f.write(json.dumps({"core": core, "centered": centered}) + "\n")
    return core, n_total, secs


def close(a, b, rel):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def compare(ref_path, dump_path, core_json):
    ref = [json.loads(l) for l in open(ref_path)]
    summary = ref.pop()
    got = [json.loads(l) for l in open(dump_path)]
    assert len(ref) == len(got), f"{len(got)} examples from kiln, {len(ref)} from the reference"
    worst, shots = 0.0, 0
    for r, g in zip(ref, got):
        where = f"{r['task']} #{r['index']} (line {r['line']})"
        for key in ("task", "index", "line", "fewshot", "start", "end", "correct"):
            assert r[key] == g[key], f"{where}: {key} {g[key]} != reference {r[key]}"
        assert r["rows"] == g["rows"], f"{where}: token ids differ"
        assert r.get("pred") == g.get("pred"), f"{where}: pred {g.get('pred')} != reference {r.get('pred')}"
        for a, b in zip(r["losses"], g["losses"]):
            assert close(a, b, 1e-5), f"{where}: mean loss {b} != reference {a}"
            if not math.isnan(a):
                worst = max(worst, abs(a - b) / max(abs(a), 1e-12))
        shots += len(r["fewshot"]) > 0
    res = json.load(open(core_json))
    assert abs(res["score"] - summary["core"]) <= 1e-12, f"CORE {res['score']} != reference {summary['core']}"
    for label, c in summary["centered"].items():
        assert abs(res["centered_results"][label] - c) <= 1e-12, f"{label}: centered {res['centered_results'][label]} != {c}"
    long_rows = sum(t["cropped_rows"] for t in res["tasks"])
    print(f"parity: {len(ref)} examples ({shots} few-shot, {long_rows} rows cropped to the context) equal in ids, "
          f"spans, verdicts; worst mean-loss rel diff {worst:.2e}; CORE {res['score']:.6f} = reference {summary['core']:.6f}")


if __name__ == "__main__":
    # Tiny tensors: one thread unless told (bench/core_bench.sh sets OMP_NUM_THREADS for both sides).
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cmd = sys.argv[1]
    if cmd == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "bench":
        core, n, secs = run(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        print(json.dumps({"examples": n, "seconds": secs, "model_seconds": secs - TOKENIZER_SECONDS[0], "core": core}))
    else:
        sys.exit(__doc__)
