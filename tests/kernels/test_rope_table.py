"""rope_table against Hugging Face transformers' LlamaRotaryEmbedding (default and llama3 types).

usage: test_rope_table.py PATH_TO_rope_table_dump

Our table stores cos in [0, D/2) and sin in [D/2, D) of each row; HF's cos/sin are (T, D) with the
two halves equal. Every entry must be within 1 ulp of HF's (HF's float32 cos/sin and pow are
themselves accurate to about 1 ulp).
"""
import subprocess
import sys

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


def check(dump, T, D, rope_parameters):
    args = [dump, str(T), str(D), repr(float(rope_parameters["rope_theta"]))]
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


def main():
    dump = sys.argv[1]
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
    ok = all([check(dump, *case) for case in cases])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
