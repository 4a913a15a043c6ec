# Compares two ./pretrain runs: per-step train losses and validation losses from metrics.jsonl,
# and the final checkpoint's model.safetensors (read with the safetensors package, no kiln code).
# Prints "loss=<max |dloss|> val=<max |dval_loss|> weights=<max |dw|> steps=<n>"; exits 2 when the
# runs do not have the same steps or tensors. Usage: compare_runs.py RUN_A RUN_B STEP
import json
import sys

from safetensors.torch import load_file


def records(run):
    train, val = {}, {}
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                train[r["step"]] = r["loss"]
            if "val_loss" in r:
                val[r["step"]] = r["val_loss"]
    return train, val


def main():
    a, b, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
    (ta, va), (tb, vb) = records(a), records(b)
    # Both runs must have loss and validation records: no records would compare vacuously.
    if sorted(ta) != sorted(tb) or sorted(va) != sorted(vb) or not ta or not va:
        print(f"different steps: {sorted(ta)} / {sorted(tb)}; val {sorted(va)} / {sorted(vb)}")
        sys.exit(2)
    dloss = max(abs(ta[s] - tb[s]) for s in ta)
    dval = max((abs(va[s] - vb[s]) for s in va), default=0.0)
    name = f"ckpt/step_{step:08d}/model.safetensors"
    wa, wb = load_file(f"{a}/{name}"), load_file(f"{b}/{name}")
    if sorted(wa) != sorted(wb):
        print("different tensors in the checkpoints")
        sys.exit(2)
    dw = max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)
    print(f"loss={dloss:.3e} val={dval:.3e} weights={dw:.3e} steps={len(ta)}")


if __name__ == "__main__":
    main()
