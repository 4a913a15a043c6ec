"""launch/speedrun.sh --tiny end to end, killed and rerun, and its TensorBoard files read by the
real tensorboard package (issue 26). Usage: python3 tests/e2e/speedrun.py REPO_ROOT
 1. An uninterrupted tiny speedrun: exit 0, DIR/report.md with a wall-clock row for every stage,
    the total and the estimated cost, ./eval's summary and one loss PNG per training stage.
 2. TensorBoard (EventAccumulator, tensorboard pinned in launch/setup.sh): every number of every
    metrics.jsonl record is a scalar of that tag at that step, float32-equal, each (tag, step)
    exactly once; LR per group, config and samples as text; ./eval's scores as scalars; a file
    whose last record is torn (a crash) still reads up to the last whole record.
 3. Rerun-safety: a second run in a fresh directory is SIGKILLed (its whole process group, as a
    node that dies) at three random points: inside pretraining (after a checkpoint and a few
    more logged steps), inside the chat-shard ./prepare, inside ./eval; each time rerun. Every rerun
    skips exactly the stages whose markers the killed run had written (and says why), resumes
    the cut-off training stage, and the final metrics (every metrics.jsonl without timings, every
    eval result, the report's summary table) equal the uninterrupted run's.
 4. The final SFT checkpoint's DONE removed: the rerun does not skip SFT, resumes it from the
    previous checkpoint, evaluates again and gets the same metrics. 5. A finished run reruns as
    all skips. 6. --rl says that ./rl does not exist and exits non-zero before starting anything.
Needs KILN_DATA (or ../shared/data) for tinyshakespeare and the task data (local copies, no network).
"""
import glob
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
SCRIPT = os.path.join(root, "launch", "speedrun.sh")
STAGES = ["data_text", "data_rest", "tokenizer", "base_data", "pretrain", "chat_data", "midtrain", "sft", "eval"]
RUNS = ["tiny", "tiny_mid", "tiny_sft"]
TIMING = ("dt_ms", "tok_per_s", "mfu")
rng = random.Random(int(os.environ.get("KILN_TEST_SEED", str(int(time.time())))))


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def start(run_dir, log, *extra):
    f = open(log, "w")
    return subprocess.Popen(["bash", SCRIPT, "--tiny", "--run-dir", run_dir, *extra], stdout=f,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=root)


def run(run_dir, log, *extra, expect_rc=0):
    t0 = time.time()
    p = start(run_dir, log, *extra)
    rc = p.wait(timeout=900)
    if rc != expect_rc:
        print(open(log).read()[-6000:], file=sys.stderr)
        fail(f"speedrun {extra} exited {rc}, expected {expect_rc}")
    return time.time() - t0, open(log).read()


def kill_when(p, log, cond, what):
    """SIGKILL p's whole process group once cond() holds; fail if the run ends first."""
    deadline = time.time() + 600
    while not cond():
        if p.poll() is not None:
            print(open(log).read()[-4000:], file=sys.stderr)
            fail(f"the run ended before the kill point ({what})")
        if time.time() > deadline:
            fail(f"timeout waiting for the kill point ({what})")
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    print(f"killed {what}")


def after_line(log, line, delay):
    """A kill condition: `delay` seconds after `line` first appeared in the log."""
    seen = []

    def cond():
        if not seen and line in open(log).read():
            seen.append(time.time())
        return bool(seen) and time.time() - seen[0] >= delay
    return cond


def kill_in_stage(run_dir, log, stage, delay):
    """Rerun, SIGKILL `delay` s after `stage` started; the rerun must have skipped exactly the finished stages."""
    before = markers(run_dir)
    p = start(run_dir, log)
    kill_when(p, log, after_line(log, f"[speedrun] start {stage}", delay), f"inside {stage} ({delay:.2f} s in)")
    out = open(log).read()
    if skipped(out) != before:
        fail(f"the rerun skipped {sorted(skipped(out))}, the finished stages were {sorted(before)}")
    if stage in markers(run_dir):
        fail(f"the kill landed after {stage} finished")
    return out


def markers(run_dir):
    return {os.path.basename(m)[:-5] for m in glob.glob(os.path.join(run_dir, ".speedrun", "*.done"))}


def skipped(out):
    return {m for m in re.findall(r"^\[speedrun\] skip (\S+): done", out, re.M)}


def metrics(run_dir, name):
    recs = [json.loads(l) for l in open(os.path.join(run_dir, "runs", name, "metrics.jsonl"))]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]


def results(run_dir):
    out = {}
    for f in sorted(glob.glob(os.path.join(run_dir, "runs", "tiny_sft", "ckpt", "eval", "*.json"))):
        j = json.load(open(f))
        out[os.path.basename(f)] = (j.get("score"), j.get("correct"), j.get("total"))
    return out


def summary_table(run_dir):
    rep = open(os.path.join(run_dir, "runs", "tiny_sft", "report.md")).read()
    return rep.split("## Summary", 1)[1].split("\n\n", 2)[1]


def final_state(run_dir):
    return {"metrics": {n: metrics(run_dir, n) for n in RUNS}, "eval": results(run_dir), "summary": summary_table(run_dir)}


# ---- TensorBoard checks through the real package --------------------------------------------
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c  # noqa: E402


def accumulate(path):
    ea = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0}, purge_orphaned_data=False)
    ea.Reload()
    return ea


def check_tb(run_dir):
    for name in RUNS:
        tb = os.path.join(run_dir, "runs", name, "tb")
        files = glob.glob(os.path.join(tb, "events.out.tfevents.*"))
        if len(files) != 1:
            fail(f"{tb}: expected one event file per stage, found {files}")
        ea = accumulate(files[0])
        tags = ea.Tags()
        want = {}
        for r in [json.loads(l) for l in open(os.path.join(run_dir, "runs", name, "metrics.jsonl"))]:
            for k, v in r.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    want.setdefault(k, []).append((r["step"], float(np.float32(v))))
        if set(tags["scalars"]) != set(want):
            fail(f"{name}: scalar tags {sorted(tags['scalars'])} != metrics.jsonl keys {sorted(want)}")
        for k, pts in want.items():
            got = [(e.step, e.value) for e in ea.Scalars(k)]
            if got != pts:  # the same steps, once each, in order, with float32-equal values
                extra = len(got) - len(pts)
                fail(f"{name}: tag {k}: {len(got)} points in TensorBoard, {len(pts)} in metrics.jsonl "
                     f"({extra:+d}); first difference at {next((a, b) for a, b in zip(got + [None] * 9, pts + [None] * 9) if a != b)}")
        for k in ("loss", "lr/matrix", "lr/embedding", "lr/unembedding", "grad_norm", "tok_per_s", "val_bpb"):
            if k not in want:
                fail(f"{name}: no {k} scalar")
        text = set(tags["tensors"])
        if "config" not in text or "samples/0" not in text:
            fail(f"{name}: text summaries {sorted(text)} lack config or samples/0")
        cfg = ea.Tensors("config")[0].tensor_proto.string_val[0].decode()
        if "tensorboard: true" not in cfg:
            fail(f"{name}: config text does not hold the run config: {cfg[:200]}")
    # ./eval's scores as scalars at the checkpoint's step
    ev = glob.glob(os.path.join(run_dir, "runs", "tiny_sft", "tb", "eval", "events.out.tfevents.*"))
    if len(ev) != 1:
        fail(f"eval event files: {ev}")
    ea = accumulate(ev[0])
    for f in glob.glob(os.path.join(run_dir, "runs", "tiny_sft", "ckpt", "eval", "*.json")):
        j = json.load(open(f))
        pts = ea.Scalars("eval/" + j["task"])
        if len(pts) != 1 or pts[0].value != np.float32(j["score"]) or pts[0].step != j["step"]:
            fail(f"eval/{j['task']}: {pts} vs {j['score']} at step {j['step']}")
    return files


def check_torn(event_file, tmp):
    data = open(event_file, "rb").read()
    # Walk the records with tensorboard's own masked CRC (an independent check of kiln's framing).
    off, ends = 0, []
    while off < len(data):
        (n,) = struct.unpack("<Q", data[off:off + 8])
        if struct.unpack("<I", data[off + 8:off + 12])[0] != masked_crc32c(data[off:off + 8]):
            fail(f"record at {off}: length CRC is not tensorboard's masked CRC-32C")
        if struct.unpack("<I", data[off + 12 + n:off + 16 + n])[0] != masked_crc32c(data[off + 12:off + 12 + n]):
            fail(f"record at {off}: data CRC is not tensorboard's masked CRC-32C")
        off += 16 + n
        ends.append(off)
    cut = os.path.join(tmp, "torn", "events.out.tfevents.torn")
    os.makedirs(os.path.dirname(cut), exist_ok=True)
    from tensorboard.compat.proto import event_pb2
    whole = accumulate(event_file)
    open(cut, "wb").write(data[:ends[-1] - 5])  # the last record loses its last 5 bytes
    torn = accumulate(cut)

    def count(ea):
        t = ea.Tags()
        return sum(len(ea.Scalars(k)) for k in t["scalars"]) + sum(len(ea.Tensors(k)) for k in t["tensors"])
    n_whole, n_torn = count(whole), count(torn)
    lost = len(event_pb2.Event.FromString(data[ends[-2] + 12:ends[-1] - 4]).summary.value)
    if n_torn != n_whole - lost or lost == 0:
        fail(f"torn file: {n_torn} values read, expected {n_whole} - {lost}")
    print(f"torn last record: tensorboard read {n_torn} of {n_whole} values (the last record's {lost} lost)")


def main():
    if masked_crc32c(b"123456789") != 0xC78AB0E5:  # the constant tests/unit/test_tb_writer.cpp checks
        fail("tensorboard's masked CRC-32C of '123456789' is not 0xC78AB0E5")
    tmp = tempfile.mkdtemp(prefix="kiln_speedrun_")
    try:
        # ---- 6. --rl: refused before anything starts ----
        rl_dir = os.path.join(tmp, "rl")
        _, out = run(rl_dir, os.path.join(tmp, "rl.log"), "--rl", expect_rc=3)
        if "./rl" not in out or os.path.exists(rl_dir):
            fail(f"--rl: expected a message about ./rl and no run directory: {out}")

        # ---- 1. uninterrupted ----
        ref = os.path.join(tmp, "ref")
        secs, out = run(ref, os.path.join(tmp, "ref.log"))
        print(f"uninterrupted tiny speedrun: {secs:.1f} s")
        if skipped(out):
            fail(f"a fresh run skipped {skipped(out)}")
        if not re.search(r"^\[speedrun\] skip core: .*(no 'core' task|no CORE bundle)", out, re.M) and "start core" not in out:
            fail("the CORE stage was neither run nor reported as skipped")
        rep = open(os.path.join(ref, "report.md")).read()
        for st in STAGES:
            if not re.search(rf"^\| {st} \| [0-9.]+ \|", rep, re.M):
                fail(f"report.md has no wall-clock row for {st}")
        if not re.search(r"^\| \*\*total\*\* \| \*\*[0-9.]+\*\*", rep, re.M) or "Estimated cost: **$" not in rep:
            fail("report.md lacks the total or the estimated cost")
        for stage in ("pretrain", "midtrain", "sft"):
            png = os.path.join(ref, "runs", "tiny_sft", f"loss_{stage}.png")
            if f"](runs/tiny_sft/loss_{stage}.png)" not in rep or open(png, "rb").read(8) != b"\x89PNG\r\n\x1a\n":
                fail(f"report.md: no loss curve PNG for {stage}")
        if "| chatcore |" not in rep or "bytes/token" not in rep:
            fail("report.md lacks ./eval's summary or the tokenizer's compression")
        durations = {}
        for st in STAGES:
            durations[st] = float(open(os.path.join(ref, ".speedrun", st + ".seconds")).read().split()[0])
        files = check_tb(ref)
        check_torn(files[0], tmp)
        want = final_state(ref)

        # ---- 3. killed three times, rerun each time ----
        ch = os.path.join(tmp, "chain")
        logs = [os.path.join(tmp, f"chain{i}.log") for i in range(5)]
        # (a) inside pretraining, after a checkpoint and a few more logged steps
        p = start(ch, logs[0])
        extra = rng.randint(2, 15)  # checkpoints every 20 of 60 steps

        def in_training():
            cks = sorted(glob.glob(os.path.join(ch, "runs", "tiny", "ckpt", "step_*", "DONE")))
            if not cks:
                return False
            ck = int(cks[-1].split("step_")[1].split("/")[0])
            try:
                last = json.loads(open(os.path.join(ch, "runs", "tiny", "metrics.jsonl")).read().splitlines()[-1])["step"]
            except (IndexError, ValueError, FileNotFoundError):
                return False
            return last >= ck + extra
        kill_when(p, logs[0], in_training, f"inside pretraining ({extra} steps after a checkpoint)")
        if "pretrain" in markers(ch):
            fail("the training kill landed after pretraining finished")
        # (b) inside the chat-shard prepare (./prepare --chat); (c) inside ./eval
        out1 = kill_in_stage(ch, logs[1], "chat_data", rng.uniform(0, 0.6 * durations["chat_data"]))
        if "[speedrun] pretrain: resuming from" not in out1:
            fail("rerun 1 did not resume the cut-off pretraining")
        kill_in_stage(ch, logs[2], "eval", rng.uniform(0.1, 0.6 * durations["eval"]))
        before = markers(ch)
        _, out3 = run(ch, logs[3])
        if skipped(out3) != before:
            fail(f"rerun 3 skipped {sorted(skipped(out3))}, the finished stages were {sorted(before)}")
        if final_state(ch) != want:
            fail("after three kills and reruns the final metrics differ from the uninterrupted run's")
        check_tb(ch)  # no step logged twice after the resume
        print("three kills (prepare, pretraining, eval) and reruns: same metrics, exact skips")

        # ---- 4. a final checkpoint without DONE is not finished ----
        newest = sorted(glob.glob(os.path.join(ch, "runs", "tiny_sft", "ckpt", "step_*")))[-1]
        os.remove(os.path.join(newest, "DONE"))
        _, out4 = run(ch, logs[4])
        if "sft" in skipped(out4) or not re.search(r"running sft again: its marker exists but .*has no DONE", out4):
            fail(f"a final checkpoint without DONE was taken as finished:\n{out4}")
        if "[speedrun] sft: resuming from" not in out4 or "eval" in skipped(out4):
            fail("SFT was not resumed or eval not rerun after the DONE-less checkpoint")
        if final_state(ch) != want:
            fail("after redoing SFT the final metrics differ")
        check_tb(ch)
        print("final checkpoint without DONE: SFT resumed, eval rerun, same metrics")

        # ---- 5. a finished run: everything skipped ----
        secs, out5 = run(ch, os.path.join(tmp, "again.log"))
        if skipped(out5) != set(STAGES):
            fail(f"a finished run's rerun skipped {sorted(skipped(out5))}")
        print(f"finished run rerun: all {len(STAGES)} stages skipped in {secs:.1f} s")
    finally:
        if os.environ.get("KILN_KEEP_TMP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
