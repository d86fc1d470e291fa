"""Independent readers and writers of the data formats, from docs/data.md, using numpy and
Hugging Face `tokenizers` only. Driven by test_reference.cpp.

  token-file OUTDIR   writes OUTDIR/ref.tokens (a token file with a target mask) and
                      OUTDIR/expected.bin: the global batches the loader must produce from it
                      unshuffled (T=16, global batch 6, 5 steps): per step int32 inputs (6,16),
                      int32 targets (6,16) with -100 where masked, int64 global target count.
  shard PREFIX TOKENIZER_DIR JSONL
                      reads PREFIX.bin/.idx and checks every document equals
                      tokenizers' encode(text, add_special_tokens=True) followed by the eos id of
                      tokenizer_config.json, and the header fields.
"""
import json
import os
import sys

import numpy as np

T, GLOBAL_BATCH, STEPS = 16, 6, 5


def token_file(outdir):
    rng = np.random.default_rng(1234)
    n = T * GLOBAL_BATCH * STEPS + 1 + 37  # a tail shorter than a window is never used
    ids = rng.integers(0, 250, size=n, dtype=np.int64).astype("<i4")
    mask = (rng.random(n) > 0.3).astype(np.uint8)
    with open(os.path.join(outdir, "ref.tokens"), "wb") as f:
        f.write(b"FMTOKENS")
        f.write(np.array([1, 1], dtype="<u4").tobytes())  # version 1, flags: has mask
        f.write(np.array([n], dtype="<u8").tobytes())
        f.write(ids.tobytes())
        f.write(mask.tobytes())
    with open(os.path.join(outdir, "expected.bin"), "wb") as f:
        for step in range(STEPS):
            inputs = np.zeros((GLOBAL_BATCH, T), dtype="<i4")
            targets = np.zeros((GLOBAL_BATCH, T), dtype="<i4")
            for j in range(GLOBAL_BATCH):
                k = step * GLOBAL_BATCH + j
                window = ids[k * T: k * T + T + 1]  # windows overlap by one token
                wmask = mask[k * T: k * T + T + 1]
                inputs[j] = window[:T]
                targets[j] = np.where(wmask[1:] != 0, window[1:], -100)
            f.write(inputs.tobytes())
            f.write(targets.tobytes())
            f.write(np.array([(targets != -100).sum()], dtype="<i8").tobytes())
    print("wrote", outdir)


def read_shard(prefix):
    with open(prefix + ".bin", "rb") as f:
        bin_bytes = f.read()
    assert bin_bytes[:8] == b"FMTOKBIN", "bad .bin magic"
    version, token_bytes = np.frombuffer(bin_bytes[8:16], dtype="<u4")
    num_tokens, num_docs, vocab_size = np.frombuffer(bin_bytes[16:40], dtype="<u8")
    bos_id, eos_id = np.frombuffer(bin_bytes[40:48], dtype="<i4")
    assert version == 1
    dtype = {2: "<u2", 4: "<u4"}[int(token_bytes)]
    tokens = np.frombuffer(bin_bytes[64:], dtype=dtype)
    assert len(tokens) == num_tokens
    with open(prefix + ".idx", "rb") as f:
        idx_bytes = f.read()
    assert idx_bytes[:8] == b"FMTOKIDX", "bad .idx magic"
    idx_docs, idx_tokens = np.frombuffer(idx_bytes[16:32], dtype="<u8")
    assert idx_docs == num_docs and idx_tokens == num_tokens
    offsets = np.frombuffer(idx_bytes[32:], dtype="<u8")
    assert len(offsets) == num_docs + 1 and offsets[0] == 0 and offsets[-1] == num_tokens
    docs = [tokens[offsets[d]:offsets[d + 1]].astype(np.int64).tolist() for d in range(int(num_docs))]
    return dict(token_bytes=int(token_bytes), vocab_size=int(vocab_size), bos_id=int(bos_id),
                eos_id=int(eos_id)), docs


def shard(prefix, tokenizer_dir, jsonl):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    with open(os.path.join(tokenizer_dir, "tokenizer_config.json")) as f:
        config = json.load(f)

    def token_id(entry):
        return tok.token_to_id(entry["content"] if isinstance(entry, dict) else entry)

    eos, bos = token_id(config["eos_token"]), token_id(config["bos_token"])
    texts = []
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                text = json.loads(line)["text"]
                if text:
                    texts.append(text)
    header, docs = read_shard(prefix)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    assert header["vocab_size"] == vocab, (header, vocab)
    assert header["token_bytes"] == (2 if vocab <= 65536 else 4), header
    assert header["eos_id"] == eos and header["bos_id"] == bos, (header, eos, bos)
    assert len(docs) == len(texts), (len(docs), len(texts))
    expected = [e.ids + [eos] for e in tok.encode_batch(texts, add_special_tokens=True)]
    bad = [i for i in range(len(texts)) if docs[i] != expected[i]]
    if bad:
        i = bad[0]
        raise SystemExit(f"{len(bad)} documents differ; first: {i} {texts[i]!r}\n ours {docs[i]}\n hf   {expected[i]}")
    print(f"{prefix}: {len(docs)} documents match tokenizers {tokenizer_dir}")


if __name__ == "__main__":
    if sys.argv[1] == "token-file":
        token_file(sys.argv[2])
    elif sys.argv[1] == "shard":
        shard(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit("usage: reference_check.py token-file OUTDIR | shard PREFIX TOKENIZER_DIR JSONL")
