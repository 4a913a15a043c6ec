"""Hugging Face transformers' NanoChatForCausalLM, AutoTokenizer and the tokenizers package: the independent
reference for ./export and ./import nanochat (tests/e2e/nanochat_hf.sh). Subcommands, joined by "+" to run in one
process (importing transformers costs seconds):
  make DIR TOKDIR SEED       a random-init NanoChatForCausalLM at an untuned config (GQA, width 96, 3 layers, the
                             tokenizer's vocab (500: not a multiple of 64), rms_norm_eps 1e-2 (large enough that
                             a wrong epsilon shows in the logits), softcap 20, rope_theta
                             5000, max_position_embeddings 96) saved with
                             save_pretrained, plus TOKDIR's tokenizer re-saved by AutoTokenizer.save_pretrained
  greedy DIR KILNTOK TEXT N OUT   generate() greedy N tokens after [bos] + encode(TEXT), cut at <|bos|> (where
                             ./sample stops); OUT gets the bytes of the prompt after <|bos|> and the new ids, as
                             ./sample prints them (kiln's token bytes; a special as its name)
  chatgreedy DIR KILNTOK TEXT N OUT   the same for the user message TEXT rendered by apply_chat_template
                             (add_generation_prompt), cut at <|assistant_end|>, as ./sample --chat prints it
  serveref DIR TEXT N OUT    greedy reply text (skip_special_tokens) to the chat [user: TEXT] -> OUT
  bpb DIR TOK.json VAL.h5 B T BATCHES   bits per byte on the Trainer's validation rows (gpt2_hf_ref.py's), stderr
  sameweights CKPT_A CKPT_B V  kiln checkpoints hold bit-identical tensors (embedding/head: the first V rows; the
                             rest is kiln's padding, never read)
  tokenizer HFDIR IDS_DIR FILES...   AutoTokenizer and tokenizers.Tokenizer encode each FILE to the ids in
                             IDS_DIR/<i>.ids (kiln's ./tokenizer encode), and decode them back to the file's text
  randtext N SEED OUT        N random Unicode strings (all planes, no surrogates) joined by newlines -> OUT
  chat HFDIR CONVS.jsonl SHARD   apply_chat_template on each conversation equals its ids in kiln's --chat shard
                             (./prepare --chat), and with add_generation_prompt (the last assistant turn dropped)
                             equals that prefix through <|assistant_start|>
"""
import json
import math
import os
import random
import sys

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, NanoChatConfig, NanoChatForCausalLM  # noqa: E402

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def load(d):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    m.eval()
    return m


def kiln_token_bytes(tok_path):
    """Every id's bytes from a kiln tokenizer JSON (byte ids, then merges in rank order, specials)."""
    j = json.load(open(tok_path))
    order = j.get("byte_ids") or list(range(256))  # byte_ids[b]: the id of byte value b
    table = [b""] * 256
    for b, i in enumerate(order):
        table[i] = bytes([b])
    for a, b in j["merges"]:
        table.append(table[a] + table[b])
    for name, _ in sorted(j["special_tokens"].items(), key=lambda kv: kv[1]):  # kiln decodes a special as its name
        table.append(name.encode())
    return table


def bos_of(tok):
    return tok.convert_tokens_to_ids("<|bos|>")


def run(cmd, args):
    if cmd == "make":
        d, tokdir, seed = args[0], args[1], int(args[2])
        tok = AutoTokenizer.from_pretrained(tokdir)
        torch.manual_seed(seed)
        cfg = NanoChatConfig(vocab_size=len(tok), hidden_size=96, intermediate_size=384, num_hidden_layers=3,
                             num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=96,
                             rms_norm_eps=1e-2, final_logit_softcapping=20.0, rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
                             bos_token_id=bos_of(tok), eos_token_id=bos_of(tok), pad_token_id=bos_of(tok))
        model = NanoChatForCausalLM(cfg)
        with torch.no_grad():  # transformers' init at std 0.02 gives near-uniform logits: widen it
            for p in model.parameters():
                p.mul_(12.0)
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)
    elif cmd in ("greedy", "chatgreedy"):
        d, kiln_tok, text, n, out = args[0], args[1], args[2], int(args[3]), args[4]
        tok = AutoTokenizer.from_pretrained(d)
        table = kiln_token_bytes(kiln_tok)
        if cmd == "greedy":
            prompt = [bos_of(tok)] + tok.encode(text, add_special_tokens=False)
            stop = bos_of(tok)
        else:
            prompt = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False)
            prompt = list(prompt["input_ids"]) if isinstance(prompt, dict) else list(prompt)
            stop = tok.convert_tokens_to_ids("<|assistant_end|>")
        ids = torch.tensor([prompt])
        with torch.no_grad():
            gen = load(d).generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                                   eos_token_id=None, pad_token_id=bos_of(tok))
        new = gen[0, len(prompt):].tolist()
        if stop in new:
            new = new[:new.index(stop)]
        print("%s: %d new ids %s" % (cmd, len(new), new[:40]), file=sys.stderr)
        # ./sample prints the prompt without its leading <|bos|>, then the new ids (specials as their names).
        assert prompt[0] == bos_of(tok), prompt[:4]
        open(out, "wb").write(b"".join(table[i] for i in prompt[1:] + new))
    elif cmd == "serveref":
        d, text, n, out = args[0], args[1], int(args[2]), args[3]
        tok = AutoTokenizer.from_pretrained(d)
        enc = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True,
                                      return_dict=True, return_tensors="pt")
        with torch.no_grad():
            gen = load(d).generate(**enc, max_new_tokens=n, do_sample=False)  # generation_config's eos
        reply = gen[0, enc["input_ids"].shape[1]:]
        open(out, "w", encoding="utf-8").write(tok.decode(reply, skip_special_tokens=True))
    elif cmd == "bpb":
        import gpt2_hf_ref
        gpt2_hf_ref.run("bpb", args)
    elif cmd == "sameweights":
        from safetensors.torch import load_file
        a, b, v = args[0], args[1], int(args[2])

        def tensors(ck):
            steps = sorted(s for s in os.listdir(ck) if s.startswith("step_"))
            return load_file(os.path.join(ck, steps[-1], "model.safetensors"))
        ta, tb = tensors(a), tensors(b)
        assert ta.keys() == tb.keys(), (sorted(ta), sorted(tb))
        for k in ta:
            x, y = ta[k], tb[k]
            if k in ("transformer.wte.weight", "lm_head.weight"):
                x, y = x[:v], y[:v]
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), "tensor %s differs" % k
        print("sameweights: %d tensors bit-identical" % len(ta), file=sys.stderr)
    elif cmd == "tokenizer":
        import tokenizers
        hfdir, ids_dir, files = args[0], args[1], args[2:]
        auto = AutoTokenizer.from_pretrained(hfdir)
        raw = tokenizers.Tokenizer.from_file(os.path.join(hfdir, "tokenizer.json"))
        total = 0
        for i, f in enumerate(files):
            text = open(f, encoding="utf-8", newline="").read()  # keep \r as it is
            want = [int(x) for x in open(os.path.join(ids_dir, "%d.ids" % i)).read().split()]
            got_raw = raw.encode(text, add_special_tokens=False).ids
            got_auto = auto.encode(text, add_special_tokens=False)
            for name, got in (("tokenizers", got_raw), ("AutoTokenizer", got_auto)):
                if got != want:
                    k = next((j for j in range(min(len(got), len(want))) if got[j] != want[j]), min(len(got), len(want)))
                    raise SystemExit("%s: %s differs from kiln at id %d of %d/%d: %s vs %s" %
                                     (f, name, k, len(got), len(want), got[k:k + 8], want[k:k + 8]))
            assert raw.decode(want, skip_special_tokens=False) == text, "%s: tokenizers' decode differs" % f
            assert auto.decode(want) == text, "%s: AutoTokenizer's decode differs" % f
            total += len(want)
        print("tokenizer: %d files, %d ids equal to kiln's (tokenizers and AutoTokenizer), decoded back" %
              (len(files), total), file=sys.stderr)
    elif cmd == "randtext":
        n, seed, out = int(args[0]), int(args[1]), args[2]
        rng = random.Random(seed)

        def ch():
            r = rng.random()
            if r < 0.4:
                return chr(rng.randrange(32, 127))
            if r < 0.5:
                return rng.choice(" \t\n\r\u00a0\u2028\u3000")
            if r < 0.8:
                return chr(rng.randrange(0xA0, 0x3000))
            while True:
                c = rng.randrange(0x3000, 0x110000)
                if not 0xD800 <= c < 0xE000:
                    return chr(c)
        strings = ["".join(ch() for _ in range(rng.randrange(1, 40))) for _ in range(n)]
        open(out, "w", encoding="utf-8", newline="").write("\n".join(strings))
    elif cmd == "chat":
        import h5py
        hfdir, convs, shard = args[0], args[1], args[2]
        tok = AutoTokenizer.from_pretrained(hfdir)
        h = h5py.File(shard, "r")
        tokens, off = h["tokens"][:].tolist(), h["doc_offsets"][:].tolist()
        records = [json.loads(line) for line in open(convs) if line.strip()]
        assert len(records) == len(off) - 1, (len(records), len(off))
        a_start = tok.convert_tokens_to_ids("<|assistant_start|>")
        for i, rec in enumerate(records):
            want = tokens[off[i]:off[i + 1]]
            msgs = rec["messages"]
            got = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)
            assert list(got) == want, "conversation %d: apply_chat_template %s\n  kiln %s" % (i, list(got), want)
            if msgs[-1]["role"] == "assistant":
                gen = list(tok.apply_chat_template(msgs[:-1], tokenize=True, add_generation_prompt=True,
                                                   return_dict=False))
                last = max(j for j, t in enumerate(want) if t == a_start)
                assert gen == want[:last + 1], "conversation %d with add_generation_prompt: %s\n  kiln %s" % (
                    i, gen, want[:last + 1])
        print("chat: %d conversations equal id for id (and with add_generation_prompt)" % len(records), file=sys.stderr)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    argv, cmds, cur = sys.argv[1:], [], []
    for a in argv + ["+"]:
        if a == "+":
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    for c in cmds:
        if c:
            run(c[0], c[1:])
