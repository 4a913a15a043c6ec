"""The speedrun's report card, DIR/report.md (launch/speedrun.sh calls this last, on every run):
per-stage and total wall-clock from DIR/.speedrun/<stage>.seconds (one line per attempt that
finished the stage), the estimated cost at a stated $/GPU-hour, the tokenizer's compression
report, the TensorBoard event files, then ./eval's report card (report.md of the SFT run) with
its image links made relative to DIR.
Usage: python3 launch/speedrun_report.py --run-dir DIR --eval-report runs/sft/report.md --gpus N
       --price USD --note TEXT --stages a,b,c
"""
import argparse
import glob
import os
import re
import time

BACKGROUND = {"data_rest"}  # ran alongside the tokenizer: shown, not added to the total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--eval-report", required=True)
    ap.add_argument("--gpus", type=int, required=True)
    ap.add_argument("--price", type=float, required=True)
    ap.add_argument("--note", default="")
    ap.add_argument("--stages", required=True)
    a = ap.parse_args()
    s_dir = os.path.join(a.run_dir, ".speedrun")
    rows, total = [], 0.0
    for st in a.stages.split(","):
        f = os.path.join(s_dir, st + ".seconds")
        if not os.path.exists(f):
            rows.append(f"| {st} | - | not run (not in this build) |")
            continue
        secs = [float(x) for x in open(f).read().split()]
        t = sum(secs)
        how = f"{len(secs)} attempt(s) that finished it" if len(secs) > 1 else "one run"
        if st in BACKGROUND:
            how += ", in the background while the tokenizer trained (not in the total)"
        else:
            total += t
        rows.append(f"| {st} | {t:.1f} | {how} |")
    cost = total / 3600.0 * a.gpus * a.price
    out = [
        "# kiln speedrun report card",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} for `{a.run_dir}`.",
        "",
        "## Wall-clock and cost",
        "",
        "| stage | seconds | note |",
        "|---|---|---|",
        *rows,
        f"| **total** | **{total:.1f}** | foreground stages |",
        "",
        f"Estimated cost: **${cost:.2f}** = {total / 3600.0:.3f} h x {a.gpus} GPU(s) x ${a.price:.2f} per GPU-hour "
        f"(an estimate: the stated price times this run's wall-clock; {a.note}). Time spent in attempts that were "
        "killed before a stage finished is not counted; a resumed stage counts the attempt that finished it.",
        "",
    ]
    tok = os.path.join(s_dir, "tokenizer_report.txt")
    if os.path.exists(tok):
        lines = [l for l in open(tok).read().splitlines() if "held-out" in l or "vocab" in l]
        out += ["## Tokenizer", "", *[f"- {l}" for l in lines], ""]
    events = sorted(glob.glob(os.path.join(a.run_dir, "runs", "**", "events.out.tfevents.*"), recursive=True))
    out += ["## TensorBoard", "", f"`tensorboard --logdir {a.run_dir}`: {len(events)} event file(s)", ""]
    out += [f"- `{os.path.relpath(e, a.run_dir)}`" for e in events] + [""]
    rep = os.path.join(a.run_dir, a.eval_report)
    body = open(rep).read()
    rel = os.path.dirname(a.eval_report)
    body = re.sub(r"\]\((loss_[^)]+\.png)\)", lambda m: f"]({rel}/{m.group(1)})", body)
    body = body.replace("# kiln report card", "# ./eval report card", 1)
    out += [body]
    tmp = os.path.join(a.run_dir, "report.md.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(out))
    os.replace(tmp, os.path.join(a.run_dir, "report.md"))


if __name__ == "__main__":
    main()
