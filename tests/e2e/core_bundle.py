"""Builds a CORE eval bundle in the DCLM format (core.yaml, eval_data/*.jsonl, eval_meta_data.csv)
from data the tests already have, for tests/e2e/core.sh and bench/core_bench.sh:
  - arc_easy (multiple_choice, 0-shot) and arc_easy_5shot (5-shot): ARC-Easy test questions as
    DCLM renders them ({"query": "Question: ...\\nAnswer:", "choices": [...], "gold": i});
  - winograd_test (schema, 0-shot) and winograd_test_2shot: Winograd-style sentences written here;
  - shakespeare_lm (language_modeling, 0-shot) and shakespeare_lm_3shot (3-shot, delimiter
    "\\n==> "): the word after a passage of tinyshakespeare; a few passages are several thousand
    characters long, so their prompts are longer than a tiny model's context (crop).
Usage: core_bundle.py OUT_DIR ARC-Easy-test.jsonl tinyshakespeare.txt
"""
import json
import os
import random
import sys


def arc(path):
    items = []
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        labels, texts = r["choices"]["label"], r["choices"]["text"]
        items.append({"query": f"Question: {r['question']}\nAnswer:", "choices": texts,
                      "gold": labels.index(r["answerKey"])})
    return items


def winograd():
    # (subject, object, continuation that fits the subject, continuation that fits the object)
    pairs = [("trophy", "suitcase", "was too big.", "was too small."),
             ("ball", "window", "was thrown too hard.", "was made of thin glass."),
             ("cat", "mouse", "was hungry.", "was frightened."),
             ("king", "servant", "gave the orders.", "obeyed the orders."),
             ("river", "bridge", "was flooding.", "was washed away."),
             ("teacher", "student", "explained the lesson.", "asked a question."),
             ("sword", "shield", "was sharp.", "was dented."),
             ("horse", "cart", "was strong.", "was heavy."),
             ("candle", "room", "was bright.", "was dark."),
             ("ship", "harbour", "was sailing in.", "was full of boats."),
             ("storm", "tree", "was violent.", "was old."),
             ("lord", "lady", "spoke first.", "answered him.")]
    items = []
    for i, (a, b, fa, fb) in enumerate(pairs):
        for j, cont in enumerate([fa, fb]):
            # The options differ in the last word; the continuation is shared (the common suffix).
            opts = [f"The {a} hit the {b} because the {a}", f"The {a} hit the {b} because the {b}"]
            if (i + j) % 2:  # put the gold option second in half of the items
                opts.reverse()
            gold = opts.index(f"The {a} hit the {b} because the {a if j == 0 else b}")
            items.append({"context_options": opts, "continuation": cont, "gold": gold})
    return items


def shakespeare(path):
    text = open(path, encoding="utf-8").read()[:200000]
    rng = random.Random(7)
    items = []
    while len(items) < 40:
        lengths = [3000, 6000] if len(items) < 2 else [rng.randrange(80, 400)]
        p = rng.randrange(7000, len(text) - 100)
        # The context ends after a word, the continuation is the next word (the delimiter adds the space).
        while text[p] != " " or not text[p - 1].isalpha():
            p += 1
        end = p + 1
        while text[end].isalpha():
            end += 1
        word = text[p + 1:end]
        if not word:
            continue
        ctx = text[max(0, p - lengths[0]):p]
        if len(items) % 5 == 0:
            ctx += "  "  # trailing whitespace: nanochat's `trim` removes it
        items.append({"context": ctx, "continuation": word})
    return items


def main():
    out, arc_path, shakes = sys.argv[1:4]
    os.makedirs(f"{out}/eval_data/test", exist_ok=True)
    data = {"arc_easy.jsonl": arc(arc_path), "winograd.jsonl": winograd(), "shakespeare.jsonl": shakespeare(shakes)}
    for name, items in data.items():
        with open(f"{out}/eval_data/test/{name}", "w", encoding="utf-8") as f:
            for it in items:
                f.write(json.dumps(it) + "\n")
    with open(f"{out}/core.yaml", "w") as f:
        f.write("""icl_tasks:
- label: arc_easy
  dataset_uri: test/arc_easy.jsonl
  num_fewshot: [0]
  icl_task_type: multiple_choice
  continuation_delimiter: ' '
- label: arc_easy_5shot
  dataset_uri: test/arc_easy.jsonl
  num_fewshot: [5]
  icl_task_type: multiple_choice
- label: winograd_test
  dataset_uri: test/winograd.jsonl
  num_fewshot: [0]
  icl_task_type: schema
- label: winograd_test_2shot
  dataset_uri: test/winograd.jsonl
  num_fewshot: [2]
  icl_task_type: schema
  continuation_delimiter: ' '
- label: shakespeare_lm
  dataset_uri: test/shakespeare.jsonl
  num_fewshot: [0]
  icl_task_type: language_modeling
  has_categories: false
- label: shakespeare_lm_3shot
  dataset_uri: test/shakespeare.jsonl
  num_fewshot: [3]
  icl_task_type: language_modeling
  continuation_delimiter: "\\n==> "
""")
    with open(f"{out}/eval_meta_data.csv", "w") as f:
        f.write("Eval Task,Task Category,Task Type,#shots,#datapoints,Random baseline,Centered Metric?,Description\n")
        f.write('arc_easy,world knowledge,multiple choice,0,2376,25,,"ARC-Easy, grade-school science"\n')
        f.write('arc_easy_5shot,world knowledge,multiple choice,5,2376,25,,"ARC-Easy, 5-shot"\n')
        f.write('winograd_test,commonsense reasoning,schema,0,24,50,,"Winograd-style, written for the test"\n')
        f.write('winograd_test_2shot,commonsense reasoning,schema,2,24,50,,"the same, 2-shot"\n')
        f.write('shakespeare_lm,language understanding,language modeling,0,40,0,,"next word, ""exact"" match"\n')
        f.write('shakespeare_lm_3shot,language understanding,language modeling,3,40,0,,"next word, 3-shot"\n')


if __name__ == "__main__":
    main()
