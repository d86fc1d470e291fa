"""fmengine's safetensors reader and writer against files of the Python `safetensors` package.

Valid files (F32, BF16, F16, metadata, empty and scalar tensors, special values) are read and
rewritten by `safetensors_probe convert`; the values must equal torch's conversions bit for bit
(reading: exact widening; writing: round to nearest even, as torch casts). Damaged files (truncated,
header length past the end, offsets out of range, overlapping, gaps, wrong sizes, bad dtype, bad
JSON) must each be refused with exit code 2 and a message naming the file (and the tensor).

usage: safetensors_check.py SAFETENSORS_PROBE
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

failures = []


def probe(exe, src, dst, dtype):
    return subprocess.run([exe, "convert", src, dst, dtype], capture_output=True, text=True)


def check(cond, what):
    if not cond:
        failures.append(what)
    print(("ok   " if cond else "FAIL ") + what)


def split(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join(path, header, data, pad=True):
    h = json.dumps(header).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def same_bits(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def main():
    exe = sys.argv[1]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        special = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 70000.0, 1e-6, 6e-8, 3e-8, 1e-40, float("inf"),
                                -float("inf"), 3.0e38, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -11])
        src = {
            "w.f32": torch.randn(17, 9),
            "w.bf16": (torch.randn(33) * 10).to(torch.bfloat16),
            "w.f16": (torch.randn(4, 5) * 100).to(torch.float16),
            "special": special,
            "empty": torch.zeros(0, 3),
            "scalar": torch.tensor(2.25),
        }
        valid = os.path.join(tmp, "valid.safetensors")
        save_file(src, valid, metadata={"format": "pt", "origin": "check"})

        # reading: every dtype widens exactly to fp32
        out = os.path.join(tmp, "f32.safetensors")
        r = probe(exe, valid, out, "F32")
        check(r.returncode == 0, f"reads a valid file ({r.stderr.strip()})")
        if r.returncode == 0:
            back = load_file(out)
            check(set(back) == set(src), "keeps every tensor name")
            for name, t in src.items():
                check(same_bits(back[name], t.float()), f"{name}: fp32 values equal torch's .float()")
            with open(out, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                meta = json.loads(f.read(n)).get("__metadata__", {})
            check(meta.get("origin") == "check", "keeps the metadata")

        # writing: fp32 -> bf16 / fp16 rounds like torch
        for dtype, tdt in (("BF16", torch.bfloat16), ("F16", torch.float16)):
            out = os.path.join(tmp, dtype + ".safetensors")
            r = probe(exe, valid, out, dtype)
            check(r.returncode == 0, f"writes {dtype} ({r.stderr.strip()})")
            if r.returncode == 0:
                back = load_file(out)
                for name, t in src.items():
                    check(same_bits(back[name], t.float().to(tdt)), f"{name}: {dtype} bits equal torch's cast")

        # damaged files: exit code 2, message naming the file (and the tensor)
        header, data = split(valid)
        names = [k for k in header if k != "__metadata__"]
        by_offset = sorted(names, key=lambda k: header[k]["data_offsets"][0])
        last = by_offset[-1]
        # a non-empty tensor in the middle, for gap / overlap cases
        mid = next(k for k in by_offset
                   if header[k]["data_offsets"][0] >= 8 and header[k]["data_offsets"][1] > header[k]["data_offsets"][0])

        cases = []

        def case(name, make, *expect):
            path = os.path.join(tmp, name + ".safetensors")
            make(path)
            cases.append((name, path, expect))

        with open(valid, "rb") as f:
            raw = f.read()
        case("truncated", lambda p: open(p, "wb").write(raw[: len(raw) - 2]), "outside the data region", "truncated")
        case("header-past-end", lambda p: open(p, "wb").write(struct.pack("<Q", len(raw)) + raw[8:]),
             "runs past the end of the file")
        case("tiny", lambda p: open(p, "wb").write(b"\x01\x02"), "shorter than the 8-byte header")

        def offsets_out_of_range(p):
            h = json.loads(json.dumps(header))
            h[last]["data_offsets"] = [h[last]["data_offsets"][0], len(data) + 64]
            join(p, h, data)
        case("offsets-out-of-range", offsets_out_of_range, "outside the data region", last)

        def overlapping(p):
            h = json.loads(json.dumps(header))
            b, e = h[mid]["data_offsets"]
            h[mid]["data_offsets"] = [b - 4, e - 4]
            join(p, h, data)
        case("overlapping", overlapping, "overlaps", mid)

        def gap(p):
            h = json.loads(json.dumps(header))
            for k in by_offset[by_offset.index(mid):]:
                b, e = h[k]["data_offsets"]
                h[k]["data_offsets"] = [b + 8, e + 8]
            join(p, h, data + bytes(8))
        case("gap", gap, "gap", mid)

        def wrong_size(p):
            h = json.loads(json.dumps(header))
            h["w.f32"]["shape"] = [17, 10]
            join(p, h, data)
        case("wrong-size", wrong_size, "w.f32", "needs")

        def end_before_begin(p):
            h = json.loads(json.dumps(header))
            b, e = h[mid]["data_offsets"]
            h[mid]["data_offsets"] = [e, b]
            join(p, h, data)
        case("end-before-begin", end_before_begin, mid, "end before they begin")

        case("bad-dtype", lambda p: save_file({"ids": torch.arange(5, dtype=torch.int64), "x": torch.ones(2)}, p),
             "ids", "dtype I64 is not supported")

        def bad_json(p):
            h = json.dumps(header).encode()[:-3] + b"   "
            with open(p, "wb") as f:
                f.write(struct.pack("<Q", len(h)) + h + data)
        case("bad-json", bad_json, "not valid JSON")

        def bad_shape(p):
            h = json.loads(json.dumps(header))
            h["w.f32"]["shape"] = [17, -9]
            join(p, h, data)
        case("negative-shape", bad_shape, "w.f32", "shape")

        for name, path, expect in cases:
            r = probe(exe, path, os.path.join(tmp, "never.safetensors"), "F32")
            msg = r.stderr.strip()
            ok = r.returncode == 2 and msg.startswith("error: " + path) and all(e in msg for e in expect)
            check(ok, f"refuses {name}: exit {r.returncode}: {msg}")
        check(not os.path.exists(os.path.join(tmp, "never.safetensors")), "writes nothing for refused input")

    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
