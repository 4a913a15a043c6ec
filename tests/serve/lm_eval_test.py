"""lm-evaluation-harness itself drives ./serve (issue 23). kiln's ./eval scores the first ARC-Easy
items of the test data (chat format: the question, "- choice=X" lines, the letter read at
<|assistant_start|>) and dumps each item's prompt ids and predicted letter. This script writes the
same items as a local JSONL and a task YAML whose prompt is the same chat rendering (special tokens
by name, which /tokenize maps to their ids; checked to give ./eval's exact prompt ids) with the
letters as one-token continuations, and runs the real `lm_eval --model local-completions` with the
remote tokenizer (/tokenize, /tokenizer_info) against the server: its per-item choices (argmax of
the letters' log-likelihoods) and accuracy must equal ./eval's. A generation task (GSM8K items,
greedy, until "\\n\\n") runs too: each of lm-eval's generations must equal the server's own greedy
completion of that prompt. Usage: lm_eval_test.py URL TMPDIR STEP_DIR"""
import glob
import json
import os
import subprocess
import sys

import requests

url, tmp, step = sys.argv[1:4]
root = os.getcwd()
data = os.environ.get("KILN_DATA", os.path.join(root, "..", "shared", "data"))
N = 12


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


# ---- ./eval's predictions on the first N ARC-Easy items
dump = os.path.join(tmp, "mc.jsonl")
r = subprocess.run(["./eval", "--ckpt", step, "--data-dir", data, "--task", "arc-easy", "--max-examples", str(N),
                    "--dump-examples", dump], capture_output=True, text=True)
if r.returncode != 0:
    fail(f"./eval: {r.stderr[-2000:]}")
kiln = [json.loads(line) for line in open(dump)]

# ---- the same items for lm-eval, rendered independently
items = [json.loads(line) for line in open(os.path.join(data, "arc", "ARC-Easy-test.jsonl"))][:N]
task_dir = os.path.join(tmp, "lm_tasks")
os.makedirs(task_dir, exist_ok=True)
with open(os.path.join(task_dir, "arc.jsonl"), "w") as f:
    for it in items:
        q = f"Multiple Choice question: {it['question']}\n"
        for text, letter in zip(it["choices"]["text"], it["choices"]["label"]):
            q += f"- {text}={letter}\n"
        q += "\nRespond only with the letter of the correct answer."
        prompt = "<|bos|><|user_start|>" + q + "<|user_end|><|assistant_start|>"
        f.write(json.dumps({"prompt": prompt, "letters": it["choices"]["label"],
                            "gold": it["choices"]["label"].index(it["answerKey"])}) + "\n")
rows = [json.loads(line) for line in open(os.path.join(task_dir, "arc.jsonl"))]
for row, k in zip(rows, kiln):
    ids = requests.post(url + "/tokenize", json={"prompt": row["prompt"], "add_special_tokens": False}, timeout=30).json()["tokens"]
    if ids != k["prompt_ids"]:
        fail(f"item {k['index']}: the lm-eval prompt tokenizes to {ids[:12]}..., ./eval's is {k['prompt_ids'][:12]}...")


def write_task(name, jsonl, rest):
    """A task YAML over a local JSONL (datasets' json loader, no download)."""
    with open(os.path.join(task_dir, name + ".yaml"), "w") as f:
        f.write(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                f"    test: {os.path.join(task_dir, jsonl)}\ntest_split: test\n" + rest)


write_task("kiln_arc_easy", "arc.jsonl", """output_type: multiple_choice
doc_to_text: "{{prompt}}"
doc_to_choice: "{{letters}}"
doc_to_target: gold
target_delimiter: ""
metric_list:
  - metric: acc
""")
gsm = [json.loads(line) for line in open(os.path.join(data, "gsm8k", "test.jsonl"))][:3]
with open(os.path.join(task_dir, "gsm.jsonl"), "w") as f:
    for it in gsm:
        f.write(json.dumps({"question": it["question"], "answer": it["answer"]}) + "\n")
write_task("kiln_gsm8k", "gsm.jsonl", """output_type: generate_until
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{answer.split('#### ')[-1]}}"
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 24
  do_sample: false
  temperature: 0
metric_list:
  - metric: exact_match
""")

out = os.path.join(tmp, "lm_out")
env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
cmd = [sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args",
       f"base_url={url}/v1/completions,tokenizer_backend=remote,model=kiln-tiny,max_length=640,num_concurrent=1",
       "--tasks", "kiln_arc_easy,kiln_gsm8k", "--include_path", task_dir, "--output_path", out, "--log_samples",
       "--batch_size", "1"]
print(" ".join(cmd), flush=True)
r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
if r.returncode != 0:
    fail(f"lm_eval exited with {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
print(r.stdout[-1500:])

samples = glob.glob(os.path.join(out, "**", "samples_kiln_arc_easy_*.jsonl"), recursive=True)
results = glob.glob(os.path.join(out, "**", "results_*.json"), recursive=True)
if not samples or not results:
    fail(f"lm_eval wrote no samples/results under {out}")
lm = sorted((json.loads(line) for line in open(samples[0])), key=lambda s: s["doc_id"])
if len(lm) != N:
    fail(f"lm_eval scored {len(lm)} items, not {N}")
agree = 0
for s, k in zip(lm, kiln):
    lls = [float(x[0]) for x in s["filtered_resps"]]  # (log-likelihood, is_greedy) per choice
    pick = s["doc"]["letters"][max(range(len(lls)), key=lambda i: lls[i])]
    if pick != k["pred"]:
        fail(f"item {k['index']}: lm-eval picks {pick} ({lls}), ./eval {k['pred']}")
    agree += 1
acc = json.load(open(results[0]))["results"]["kiln_arc_easy"]["acc,none"]
kiln_acc = json.load(open(os.path.join(step, "eval", "arc-easy.json")))
want = kiln_acc["correct"] / kiln_acc["total"]
if abs(acc - want) > 1e-9:
    fail(f"lm-eval's accuracy {acc} != ./eval's {want}")
print(f"lm-eval kiln_arc_easy: {agree}/{N} per-item choices equal ./eval's; accuracy {acc:.4f} = ./eval's {want:.4f}")

# ---- the generation task: lm-eval's generations are the server's greedy completions
gs = glob.glob(os.path.join(out, "**", "samples_kiln_gsm8k_*.jsonl"), recursive=True)
if not gs:
    fail("lm_eval wrote no kiln_gsm8k samples")
gen = sorted((json.loads(line) for line in open(gs[0])), key=lambda s: s["doc_id"])
if len(gen) != len(gsm):
    fail(f"kiln_gsm8k: {len(gen)} samples")
for s in gen:
    prompt = s["arguments"]["gen_args_0"]["arg_0"] if isinstance(s["arguments"], dict) else s["arguments"][0][0]
    ids = requests.post(url + "/tokenize", json={"prompt": prompt, "add_special_tokens": False}, timeout=30).json()["tokens"]
    direct = requests.post(url + "/v1/completions", json={"prompt": ids, "max_tokens": 24, "temperature": 0,
                                                          "stop": ["\n\n"]}, timeout=60).json()["choices"][0]["text"]
    got = s["resps"][0][0]
    if got != direct:
        fail(f"kiln_gsm8k doc {s['doc_id']}: lm-eval got {got!r}, the server alone {direct!r}")
print(f"lm-eval kiln_gsm8k: {len(gen)} generations equal the server's greedy completions")
