"""Parity of fmengine's tokenizers with Hugging Face `tokenizers`.

Usage: parity.py TOKENIZER_TOOL   (run by parity.sh with the test venv's python)

For the real LLaMA 2 and LLaMA 3 tokenizer.json files (FM_SHARED_DIR) and for synthetic variants
of them (other pre-tokenizer/decoder/post-processor shapes, added-token flags), every case is
encoded by tokenizer_tool and by `tokenizers`, with and without add_special_tokens, and decoded
with and without skip_special_tokens; ids and texts must be equal. Cases: every line of
tinyshakespeare and the whole file as one text, hand-written hard cases (scripts, emoji, spaces,
digits, contractions, special tokens in the text, long words, invalid UTF-8), random strings of
pieces that meet at the edges of the split patterns' alternatives, and a sweep over
the code points of planes 0-3 and 14 in contexts that expose their character class.

Invalid UTF-8: our API takes bytes and repairs them (each maximal invalid subsequence -> U+FFFD);
the reference encodes bytes.decode("utf-8", errors="replace").
Round trip: wherever the reference's decode(encode(x)) gives x back, ours must give the bytes of x.
"""
import copy
import json
import os
import struct
import subprocess
import sys
import tempfile
import unicodedata

from tokenizers import Tokenizer

TOOL = sys.argv[1]
SHARED = os.environ.get("FM_SHARED_DIR")
if not SHARED:
    sys.exit("FM_SHARED_DIR is not set: run the tests through meson (scripts/test.sh)")
LLAMA2 = os.path.join(SHARED, "data/tokenizers/llama2/tokenizer.json")
LLAMA3 = os.path.join(SHARED, "data/tokenizers/llama3/tokenizer.json")
CORPUS = os.path.join(SHARED, "data/tinyshakespeare.txt")


def hard_cases():
    texts = [
        "", " ", "  ", "   ", "\t", "\n", "\r\n", "\r", " \n ", "\n\n\n", "   leading", "trailing   ",
        "\t\ttabs\tinside\t", "mixed \t\n \r\n  spaces\n", "a  b   c    d", "end with newline\n",
        " \n\n  x", "x\n \n", "\r\n\r\n x", "line1\nline2\r\nline3\rline4",
        "Hello, world!", "DON'T", "they'Re", "I'M", "we'VE", "you'LL", "he'D", "it's O'Neil's",
        "can'T won'T", "'s 'S 't 'T 're 'RE 'rE 've 'Ve 'm 'M 'll 'LL 'lL 'd 'D", "'", "''", "x'",
        "x'\u017f x'\u017fa", "rock'n'roll", "'hello'", " 'quoted' ",
        "1", "12", "123", "1234", "1234567890", "3.14159", "10,000,000", "a1b22c333d4444e55555",
        "\u0663\u0664\u0665\u0666\u0667", "\u00bd\u00be\u2153\u2154", "\u2167\u2168", "\uff11\uff12\uff13\uff14",
        "\u00b2\u00b3 x\u00b2", "9\u00bd", "0x1F 0b1010 1e-9",
        "caf\u00e9", "cafe\u0301", "e\u0301\u0301\u0301x", "na\u00efve r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m",
        "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03b3\u03bb\u03ce\u03c3\u03c3\u03b1",
        "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442 \u0401\u0451",
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0644\u063a\u0629 \u0661\u0662\u0663",
        "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e \u0967\u0968",
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002", "\u4e2d\u6587\u6587\u672c\u6d4b\u8bd5\uff0c\u597d\u7684",
        "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", "\u05e2\u05d1\u05e8\u05d9\u05ea",
        "\U00020000\U0002a6d6 \U00030000", "\u1e9e\u00df \u0130i\u0131I",
        "\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
        "\U0001F1FA\U0001F1F8\U0001F1EB\U0001F1F7", "\u2764\ufe0f", "\U0001F3F3\ufe0f\u200d\U0001F308",
        "a\U0001F600b", "\U0001F600\U0001F600\U0001F600", " \U0001F600 x \U0001F600",
        "<s>", "</s>", "<unk>", "<s>hello</s>", "a<s>b", " <s> ", "<<s>>", "<s", "s>", "<s><s></s>",
        "<|begin_of_text|>", "<|eot_id|>", "<|begin_of_text|>Hi<|eot_id|>", "<|eot_id|><|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>", "<|reserved_special_token_5|>",
        "<|begin_of_text", "x <|end_of_text|> y", "<|begin_of_text|> <|end_of_text|>\n",
        "a" * 5000, "ab" * 3000, "supercalifragilisticexpialidocious" * 40, "\U0001F642" * 1500, "1" * 1001,
        " " * 1000, "\n" * 500, "." * 3000, "x" * 30000, "\u4e2d" * 2000, ("word " * 2000),
        "\x00", "a\x00b", "\x1c\x1d\x1e\x1f", "a\x0bb\x0cc", "\x85", "x\x85y", "\u2028\u2029", "\u00a0\u3000x",
        "\ufeffBOM", "a\u200bb", "\ufffd", "\U000F0000\U0010FFFD", "\ue000",
        "def f(x):\n    return x**2  # square\n", "https://example.com/path?q=1&r=2#frag",
        "C++ std::vector<int> v{1, 2};", "$100.00 and 50% off!!!", 'JSON: {"a": [1, 2], "b": null}',
        "    indented\n\tcode\n", "--- *** ___ ...", "(hello) [world] {foo}", "~!@#$%^&*()_+`-=",
    ]
    cases = [t.encode("utf-8") for t in texts]
    cases += [
        b"\xff", b"\x80", b"abc\xe2\x82", b"\xe2\x82abc", b"\xf0\x80\x80\x80", b"\xed\xa0\x80", b"\xc0\xaf",
        b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x28\xa1", b"caf\xe9 au lait", b"\xf0\x9f\x98",
        b"\xf0\x9f\x98\x80\xf0\x9f", b"a\xc3", b"\xc3\xc3\xa9", b"<s>\xff</s>", b"\xfe\xfe\xff\xff",
    ]
    return cases


def random_cases(count=3000, seed=1234, extra_pieces=()):
    """Short random strings over pieces that meet at the edges of the split patterns' alternatives
    (spaces of several kinds before letters, digits, marks and punctuation; contractions; special
    tokens), deterministic."""
    import random
    rng = random.Random(seed)
    pieces = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\x0b", "\x85", "\u2028", "\x1c",
              "a", "Z", "word", "\u00e9", "\u017f", "'", "s", "t", "re", "VE", "m", "LL", "d", "1", "23", "4567",
              "\u0663", "\u00bd", "\u2167", "!", ".", ",", "?!", "--", "_", "(", ")", "\"", "\U0001F600", "\u200d",
              "\u0301", "\u4e2d", "\u0915\u094d", "\u05d0", "\u0627", "\u2581", "\u2581\u2581", "<s>", "</s>",
              "<unk>", "<|eot_id|>", "<|begin_of_text|>", "<", "|", ">", "\ufffd", "\x00"] + list(extra_pieces)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 24))).encode("utf-8") for _ in range(count)]


def corpus_cases():
    with open(CORPUS, "rb") as f:
        data = f.read()
    return data.split(b"\n") + [data]


def sweep_cases(contexts):
    """Code points of planes 0-3 and 14 (no surrogates), 64 per case. With `contexts`, planes 0, 1
    and 14 appear as "x<c>1 <c><c>a '<c>", which separates letters, numbers, whitespace and the
    rest, and contractions; planes 2 and 3 (ideographs, no spaces) as "x<c>1". Without, each code
    point appears once, a space after every 16."""
    cps = [c for c in range(0x40000) if not 0xD800 <= c <= 0xDFFF] + list(range(0xE0000, 0xE0200))
    cases = []
    for i in range(0, len(cps), 64):
        parts = []
        for k, c in enumerate(cps[i:i + 64]):
            ch = chr(c)
            if not contexts:
                parts.append(ch + (" " if k % 16 == 15 else ""))
            elif 0x20000 <= c < 0x40000:
                parts.append(f"x{ch}1")
            else:
                parts.append(f"x{ch}1 {ch}{ch}a '{ch} ")
        cases.append("".join(parts).encode("utf-8"))
    return cases


def run_tool(tokenizer_path, cases, threads):
    with tempfile.TemporaryDirectory() as tmp:
        cases_path = os.path.join(tmp, "cases.bin")
        out_path = os.path.join(tmp, "out.bin")
        with open(cases_path, "wb") as f:
            f.write(struct.pack("<I", len(cases)))
            for c in cases:
                f.write(struct.pack("<I", len(c)))
                f.write(c)
        args = [TOOL, "encode", tokenizer_path, cases_path, out_path]
        if threads > 1:
            args += ["--threads", str(threads)]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"tokenizer_tool failed on {tokenizer_path} (exit {proc.returncode}):\n{proc.stderr}")
        with open(out_path, "rb") as f:
            data = f.read()
    pos = 0

    def u32():
        nonlocal pos
        (v,) = struct.unpack_from("<I", data, pos)
        pos += 4
        return v

    def blob():
        nonlocal pos
        n = u32()
        pos += n
        return data[pos - n:pos]

    results = []
    for _ in cases:
        entry = []
        for _special in (False, True):
            n = u32()
            ids = list(struct.unpack_from(f"<{n}i", data, pos))
            pos += 4 * n
            entry.append((ids, blob(), blob()))
        results.append(entry)
    return results


def short(b, limit=80):
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + "..."


def check(name, tokenizer_path, cases, threads=1, special_upto=None):
    """Compares every case without special tokens, and cases[:special_upto] with them."""
    ref = Tokenizer.from_file(tokenizer_path)
    ours = run_tool(tokenizer_path, cases, threads)
    texts = [c.decode("utf-8", errors="replace") for c in cases]
    failures = []
    round_trips = 0
    for special_index, special in enumerate((False, True)):
        count = len(cases) if not special or special_upto is None else special_upto
        encodings = ref.encode_batch(texts[:count], add_special_tokens=special)
        ref_ids = [e.ids for e in encodings]
        decoded = {skip: ref.decode_batch(ref_ids, skip_special_tokens=skip) for skip in (False, True)}
        for i, case in enumerate(cases[:count]):
            ids, dec_keep, dec_skip = ours[i][special_index]
            if ids != ref_ids[i]:
                first = next((k for k in range(min(len(ids), len(ref_ids[i]))) if ids[k] != ref_ids[i][k]),
                             min(len(ids), len(ref_ids[i])))
                failures.append(f"ids differ (add_special_tokens={special}) for {short(case)}: first at {first}: "
                                f"ours {ids[first:first + 6]} reference {ref_ids[i][first:first + 6]}")
                continue
            for skip, got in ((False, dec_keep), (True, dec_skip)):
                want = decoded[skip][i].encode("utf-8")
                if got != want:
                    failures.append(f"decode(skip_special_tokens={skip}, add_special_tokens={special}) differs for "
                                    f"{short(case)}: ours {short(got)} reference {short(want)}")
            if not special and decoded[False][i] == texts[i]:
                round_trips += 1
                if dec_keep != texts[i].encode("utf-8"):
                    failures.append(f"round trip fails for {short(case)}")
    status = "ok" if not failures else f"{len(failures)} FAILURES"
    print(f"{name}: {len(cases)} cases, {round_trips} round-trip in the reference and ours: {status}")
    for f in failures[:8]:
        print("   ", f)
    return not failures


def write_variant(tmp, name, base_path, edit):
    with open(base_path, encoding="utf-8") as f:
        doc = json.load(f)
    edit(doc)
    path = os.path.join(tmp, name + ".json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return path


def added(doc, content, **flags):
    ids = [t["id"] for t in doc["added_tokens"]]
    base = len(doc["model"]["vocab"])
    new_id = max(max(ids) + 1, base) if ids and max(ids) >= base else base
    token = {"id": new_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": False}
    token.update(flags)
    doc["added_tokens"].append(token)


METASPACE = "\u2581"


def variants():
    """(name, base file, edit of its JSON, extra cases)."""
    def llama3_template(doc):
        doc["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                       "tokens": ["<|begin_of_text|>"]}}}]}

    def metaspace(scheme, split, decoder):
        def edit(doc):
            doc["normalizer"] = None
            doc["pre_tokenizer"] = {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": scheme,
                                    "split": split}
            if decoder == "metaspace":
                doc["decoder"] = {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": scheme,
                                  "split": split}
        return edit

    def byte_level(prefix_space):
        def edit(doc):
            doc["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": prefix_space, "trim_offsets": True,
                                    "use_regex": True}
        return edit

    def llama3_flags(doc):
        added(doc, "<mask>", lstrip=True, rstrip=True, special=True)
        added(doc, "xyzzy", single_word=True)
        added(doc, "Hello World", normalized=True)
        added(doc, "\u00e9t\u00e9", rstrip=True)

    def llama2_flags(doc):
        added(doc, "<mask>", lstrip=True, special=True)
        added(doc, "foo bar", normalized=True)
        added(doc, "zork", single_word=True, rstrip=True)

    def llama2_unk(doc):
        doc["model"]["byte_fallback"] = False

    def llama2_unk_unfused(doc):
        doc["model"]["byte_fallback"] = False
        doc["model"]["fuse_unk"] = False

    def no_ignore_merges(doc):
        doc["model"]["ignore_merges"] = False

    def no_decoder(doc):
        doc["decoder"] = None

    flag_pieces = ["<mask>", "xyzzy", "Hello World", "\u00e9t\u00e9", "foo bar", "zork", "foo", "bar"]
    flag_cases = [c.decode("utf-8") for c in random_cases(1000, 99, flag_pieces)] + ["<mask>", " <mask> ", "a <mask>  b", "x<mask>y", "\t<mask>\n", "<mask><mask>", " xyzzy ",
                  "xyzzyx", "axyzzy", "(xyzzy)", "xyzzy\u0301", "Hello World", "say Hello World!",
                  "\u00e9t\u00e9 chaud", "foo bar", "a foo bar b", "zork", "zorky", " zork  x", "<mask>zork"]
    unk_cases = ["\u4e00\U0001F600\U000F0000", "\U000F0000\U000F0001x\U000F0002", "\u0fff\u0ffe", "ab\U000F0000"]
    def llama3_plain(doc):
        no_ignore_merges(doc)
        no_decoder(doc)

    return [
        ("llama3 with a <|begin_of_text|> template", LLAMA3, llama3_template, []),
        ("llama2 as Metaspace(first, no split), Metaspace decoder", LLAMA2, metaspace("first", False, "metaspace"), []),
        ("llama2 as Metaspace(always, split)", LLAMA2, metaspace("always", True, "metaspace"), []),
        ("llama2 as Metaspace(never, no split)", LLAMA2, metaspace("never", False, "metaspace"), []),
        ("llama3 vocabulary with GPT-2 ByteLevel pre-tokenizer", LLAMA3, byte_level(False), []),
        ("llama3 vocabulary with GPT-2 ByteLevel, prefix space", LLAMA3, byte_level(True), []),
        ("llama3 with added-token flags", LLAMA3, llama3_flags, flag_cases),
        ("llama2 with added-token flags", LLAMA2, llama2_flags, flag_cases),
        ("llama2 without byte fallback (fused unk)", LLAMA2, llama2_unk, unk_cases),
        ("llama2 without byte fallback (unfused unk)", LLAMA2, llama2_unk_unfused, unk_cases),
        ("llama3 without ignore_merges nor decoder", LLAMA3, llama3_plain, []),
    ]


def check_input_errors():
    """An unsupported tokenizer.json is refused with the file and key named, exit code 2."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_variant(tmp, "bad", LLAMA3, lambda doc: doc.update(normalizer={"type": "NFKC"}))
        proc = subprocess.run([TOOL, "info", path], capture_output=True, text=True)
        want = f"error: {path}: normalizer.type: normalizer 'NFKC' is not supported"
        ok = proc.returncode == 2 and proc.stderr.startswith(want)
        print(f"unsupported feature refused with exit 2: {'ok' if ok else 'FAILED'}")
        if not ok:
            print(f"    exit {proc.returncode}, stderr {proc.stderr!r}, wanted {want!r}")
        return ok


def main():
    ok = check_input_errors()
    hard = hard_cases() + random_cases()
    corpus = corpus_cases()
    # The code point sweep is compared without special tokens only: with them only a prefix changes.
    upto = len(corpus) + len(hard)
    ok &= check("llama2 (tinyshakespeare, hard cases, code point sweep)", LLAMA2,
                corpus + hard + sweep_cases(contexts=False), threads=2, special_upto=upto)
    ok &= check("llama3 (tinyshakespeare, hard cases, code point sweep)", LLAMA3,
                corpus + hard + sweep_cases(contexts=True), threads=2, special_upto=upto)
    some_lines = corpus[:1000]
    with tempfile.TemporaryDirectory() as tmp:
        for name, base, edit, extra in variants():
            path = write_variant(tmp, "variant", base, edit)
            ok &= check(name, path, hard + some_lines + [e.encode("utf-8") for e in extra])
    if not ok:
        sys.exit("tokenizer parity FAILED")
    print("tokenizer parity: all equal")


if __name__ == "__main__":
    main()
