"""Peer measurement for bench/model/run.sh: tokens/s of forward + backward + AdamW step of a
Hugging Face LlamaForCausalLM (fp32, CPU) with the same config, batch and thread count as fmtrain,
and the peak resident memory of the process.

usage: torch_train_bench.py CONFIG_JSON --batch B --seq T --steps N --warmup W --threads K
       [--compile]
Prints one JSON line: {"peer": "transformers", "tokens_per_s": ..., "peak_rss_mib": ..., ...}
"""
import argparse
import json
import resource
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig.from_json_file(args.config)
    cfg._attn_implementation = args.attn
    model = transformers.LlamaForCausalLM(cfg).float()
    model.train()
    decay = [p for n, p in model.named_parameters() if "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "norm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-4, foreach=True)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), generator=gen)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def step():
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "peer": "transformers", "torch": torch.__version__, "transformers": transformers.__version__,
        "attn": args.attn, "threads": args.threads, "params": n_params,
        "batch": args.batch, "seq": args.seq,
        "step_s_median": median, "tokens_per_s": args.batch * args.seq / median,
        "peak_rss_mib": rss_mib,
    }))


if __name__ == "__main__":
    main()
