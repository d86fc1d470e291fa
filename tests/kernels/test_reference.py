"""Kernels against their reference peers: rope_table against Hugging Face transformers'
LlamaRotaryEmbedding (default and llama3 types), adam_update against torch.optim.AdamW / Adam.

usage: test_reference.py PATH_TO_reference_tool

rope: our table stores cos in [0, D/2) and sin in [D/2, D) of each row; HF's cos/sin are (T, D) with
the two halves equal. Every entry must be within 1 ulp of HF's (HF's float32 cos/sin and pow are
themselves accurate to about 1 ulp).
adam: several steps from the same parameters and gradients with torch.optim's single-tensor path;
the moments must agree to 1e-5 relative and the parameters to 1e-5 of their movement (in practice
the moments are bit-identical for AdamW and parameters differ by about an ulp: torch's float sqrt
is not correctly rounded).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

torch.set_num_threads(1)


def hf_table(T, D, rope_parameters):
    config = LlamaConfig(hidden_size=2 * D, num_attention_heads=2, head_dim=D,
                         max_position_embeddings=T, rope_parameters=rope_parameters)
    rope = LlamaRotaryEmbedding(config)
    cos, sin = rope(torch.zeros(1, dtype=torch.float32), torch.arange(T)[None])
    return cos[0].numpy(), sin[0].numpy()


def ordered(a):
    """float32 bits mapped to integers that are adjacent for adjacent floats (across zero too)."""
    bits = a.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def ulp_distance(a, b):
    return np.abs(ordered(a) - ordered(b))


def check_rope(tool, T, D, rope_parameters):
    args = [tool, "rope", str(T), str(D), repr(float(rope_parameters["rope_theta"]))]
    if rope_parameters["rope_type"] == "llama3":
        args += [repr(float(rope_parameters[k])) for k in ("factor", "low_freq_factor", "high_freq_factor")]
        args += [str(rope_parameters["original_max_position_embeddings"])]
    raw = subprocess.run(args, check=True, capture_output=True).stdout
    ours = np.frombuffer(raw, dtype=np.float32).reshape(T, D)
    cos, sin = hf_table(T, D, rope_parameters)
    half = D // 2
    assert np.array_equal(cos[:, :half], cos[:, half:]) and np.array_equal(sin[:, :half], sin[:, half:])
    d_cos = ulp_distance(ours[:, :half], cos[:, :half])
    d_sin = ulp_distance(ours[:, half:], sin[:, :half])
    worst = int(max(d_cos.max(), d_sin.max()))
    exact = float(np.mean(np.concatenate([d_cos.ravel(), d_sin.ravel()]) == 0))
    name = f"{rope_parameters['rope_type']} theta={rope_parameters['rope_theta']:g} T={T} D={D}"
    print(f"{name}: max {worst} ulp, {100 * exact:.3f}% bit-identical")
    if worst > 1:
        t, i = np.unravel_index(np.argmax(np.maximum(d_cos, d_sin)), d_cos.shape)
        print(f"  worst at position {t}, frequency {i}: ours cos {ours[t, i]!r} sin {ours[t, half + i]!r}, "
              f"reference cos {cos[t, i]!r} sin {sin[t, i]!r}")
        return False
    return True


def check_adam(tool, adamw, lr, betas, eps, weight_decay, steps=6, n=20000):
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(n).astype(np.float32)
    # gradients of mixed scale, so that eps matters for some entries and not for others
    grads = (rng.standard_normal((steps, n)) * np.exp(rng.uniform(-9, 1, (steps, n)))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "adam.bin")
        np.concatenate([p0, grads.ravel()]).astype(np.float32).tofile(path)
        args = [tool, "adam", path, str(n), str(steps), repr(lr), repr(betas[0]), repr(betas[1]), repr(eps),
                repr(weight_decay), "1" if adamw else "0"]
        raw = subprocess.run(args, check=True, capture_output=True).stdout
    ours = np.frombuffer(raw, dtype=np.float32).reshape(3, n)
    p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    kind = torch.optim.AdamW if adamw else torch.optim.Adam
    opt = kind([p], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    for step in range(steps):
        p.grad = torch.from_numpy(grads[step].copy())
        opt.step()
    state = opt.state[p]
    ok = True
    ref_p = p.detach().numpy()
    for name, ref, got in (("param", ref_p, ours[0]), ("exp_avg", state["exp_avg"].numpy(), ours[1]),
                           ("exp_avg_sq", state["exp_avg_sq"].numpy(), ours[2])):
        ulps = ulp_distance(got, ref)
        if name == "param":
            # relative to how far the parameter moved, plus the rounding of the parameter itself
            err = np.abs(got - ref) - 2 * np.spacing(np.abs(ref))
            worst = float(np.max(err / np.maximum(np.abs(ref - p0), 1e-30)))
        else:
            worst = float(np.max(np.abs(got - ref) / (np.abs(ref) + 1e-6 * np.sqrt(np.mean(ref ** 2)))))
        print(f"{kind.__name__} lr={lr} wd={weight_decay} eps={eps} {name}: {100 * float(np.mean(ulps == 0)):.2f}% "
              f"bit-identical, max {int(ulps.max())} ulp, relative error {worst:.1e}")
        ok = ok and worst <= 1e-5
    return ok


def main():
    tool = sys.argv[1]
    llama3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    llama32 = dict(llama3, factor=32.0)
    cases = [
        (256, 8, {"rope_type": "default", "rope_theta": 10000.0}),
        (4096, 64, {"rope_type": "default", "rope_theta": 10000.0}),
        (4096, 128, {"rope_type": "default", "rope_theta": 10000.0}),
        (8192, 128, {"rope_type": "default", "rope_theta": 500000.0}),
        (16384, 128, llama3),
        (12000, 64, llama32),
    ]
    ok = all([check_rope(tool, *case) for case in cases])
    adam_cases = [
        (True, 1e-3, (0.9, 0.999), 1e-8, 0.1),
        (True, 3e-4, (0.9, 0.95), 1e-6, 0.0),
        (False, 1e-3, (0.9, 0.999), 1e-8, 0.01),
        (False, 1e-2, (0.8, 0.99), 1e-4, 0.0),
    ]
    ok = all([check_adam(tool, *case) for case in adam_cases]) and ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
