"""Local engine speed, memory and quality: fp32 vs int8 vs int4 (and llama.cpp when installed).

Prints one JSON line per engine:
    {"engine", "prefill_tok_s", "decode_tok_s", "rss_mb", "load_s", "top1_vs_fp32", ...}

    python bench/decode.py                  # fp32, int8, int4 on the SmolLM2 GGUF, threads=2
    python bench/decode.py --engines int4   # one engine
    python bench/decode.py --hf             # plus HF transformers bf16 on the same GGUF (reference)
    python bench/decode.py --engines fp32,int8,int4,int4:2   # int4 again with 2 decode threads

Prefill runs on ``--threads`` (2); decode steps on ``--decode-threads`` (1, the engine's default,
see ``Transformer.use_threads``). llama.cpp runs twice: n_threads = n_threads_batch = ``--threads``
(the issue's setting), and n_threads = ``--decode-threads`` with n_threads_batch = ``--threads``.

llama.cpp (llama-cpp-python) is measured the same way when it is importable, else one
"skipped" line says why.

Each engine runs in its own subprocess so that load time and resident memory are its own:
``rss_mb`` is the growth of the process's resident set across loading the model (weights,
tokenizer, Python objects; after the loader's scratch memory is returned with malloc_trim),
split into ``rss_anon_mb`` (private memory) and ``rss_file_mb`` (pages of mapped files: shared
library code the load runs for the first time, llama.cpp's memory-mapped GGUF);
``model_rss_mb`` the part that is the model's own: private memory plus resident pages of the
model files it maps (llama.cpp's GGUF, the int8 engine's code file), leaving out the shared
libraries' code pages (torch's, the tokenizers extension's) that the load runs for the first time;
``weights_mb`` the bytes of the model's tensors; ``peak_rss_growth_mb`` the growth after the runs
(adds KV cache and the 300-token full-vocabulary logits of the quality check); torch itself is
in ``process_rss_mb`` only. Prefill: one 512-token prompt of HotpotQA text (best of 3, after a
warm-up). Decode: 128 greedy tokens after that prompt (best of 2; the decode loop alone is
timed). ``top1_vs_fp32``: share of 600 positions of other HotpotQA text where the engine's most
likely next token equals fp32's; ``ppl``: perplexity on the same positions. The int8 engine runs
GPTQ-rounded codes in rotated bases (``int8_rounding``, ``inference.rotation``), calibrated once
on LongMemEval chat sessions and HotpotQA text by bench/int8_calibrate.py and cached in bench/.cache (a "note" line says when this run made them). Other processes
share the machine: every line carries the 1-minute load average when it finished.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "hotpotqa_dev.json"
PREFILL_TOKENS, DECODE_TOKENS, EVAL_WINDOWS, EVAL_LEN = 512, 128, 2, 300


def rss_mb(field: str = "VmRSS") -> float:
    """Resident MiB: VmRSS (all), RssAnon (private memory) or RssFile (mapped files: library code,
    a memory-mapped model)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def resident_growth(before: float) -> float:
    """Resident-set growth once the loader's freed scratch memory is handed back to the OS."""
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed heap pages resident otherwise
    return round(rss_mb() - before, 1)


def resident_split(before: dict[str, float]) -> dict[str, float]:
    """Growth of private memory and of mapped-file pages since ``before`` (call after resident_growth)."""
    return {f"rss_{k}_mb": round(rss_mb(f) - before[f], 1) for k, f in (("anon", "RssAnon"), ("file", "RssFile"))}


def resident_now() -> dict[str, float]:
    return {f: rss_mb(f) for f in ("RssAnon", "RssFile")}


def model_file_mb(paths: list[str]) -> float:
    """Resident MiB of the pages mapped from ``paths`` (a memory-mapped model or code file)."""
    total, current = 0, None
    with open("/proc/self/smaps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and not parts[0].endswith(":"):
                current = parts[5] if len(parts) > 5 else None
            elif parts[0] == "Rss:" and current in paths:
                total += int(parts[1])
    return total / 1024


def int8_codes_path(model_path: Path) -> Path:
    from bench.int8_calibrate import codes_path

    return codes_path(model_path)


def tensor_mb(model) -> float:  # noqa: ANN001
    seen, total = set(), 0
    for t in [*model.buffers(), *model.parameters(), model.rotations(PREFILL_TOKENS + DECODE_TOKENS)]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total / 2**20


def paragraphs() -> list[str]:
    data = json.loads(DATA.read_text())
    return [f"{title}. " + "".join(sents) for item in data for title, sents in item["context"]]


def texts(tokenizer) -> tuple[list[int], list[list[int]]]:
    """A 512-token prompt, and evaluation windows from later, different paragraphs."""
    paras = paragraphs()
    prompt = tokenizer.encode("\n\n".join(paras[:40]))[:PREFILL_TOKENS]
    rest = tokenizer.encode("\n\n".join(paras[40:120]))
    return prompt, [rest[i * EVAL_LEN : (i + 1) * EVAL_LEN] for i in range(EVAL_WINDOWS)]


def best_of(n: int, fn) -> float:  # noqa: ANN001
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure_local(quant: str, threads: int, decode_threads: int, ref_path: Path, compute: str = "auto") -> dict:
    import torch

    from inference.compute_dtype import NAMES
    from inference.local_engine import LocalEngine

    from inference.gguf_file import default_model_path

    codes = str(int8_codes_path(default_model_path())) if quant == "int8" else None
    before, split_before = rss_mb(), resident_now()
    engine = LocalEngine(quant=quant, threads=threads, decode_threads=decode_threads, int8_codes=codes,
                         compute_dtype=NAMES[compute])
    model_mb = resident_growth(before)
    split = resident_split(split_before)
    mapped = model_file_mb([str(default_model_path()), *([codes] if codes else [])])
    model = engine.model
    prompt, windows = texts(engine.tokenizer)
    cache = model.new_cache(PREFILL_TOKENS + DECODE_TOKENS)
    x = torch.tensor([prompt])
    model(x[:, :64], 0, cache)  # warm-up
    prefill_s = best_of(3, lambda: model(x, 0, cache))

    def decode() -> float:
        logits = model(x, 0, cache)[0, -1]  # the prompt, not timed
        t = time.perf_counter()
        for i in range(DECODE_TOKENS):
            tok = int(logits.argmax())
            logits = model(torch.tensor([[tok]]), PREFILL_TOKENS + i, cache)[0, -1]
        return time.perf_counter() - t

    decode_s = min(decode() for _ in range(2))
    top1, ppl = quality(model, windows, ref_path)
    return {
        "engine": quant, "prefill_tok_s": round(PREFILL_TOKENS / prefill_s, 1),
        "decode_tok_s": round(DECODE_TOKENS / decode_s, 1), "rss_mb": model_mb,
        "load_s": round(engine.load_seconds, 2), "top1_vs_fp32": top1, "ppl": ppl, **split,
        "model_rss_mb": round(split["rss_anon_mb"] + mapped, 1),
        **({"int8_rounding": engine.int8_rounding} if quant == "int8" else {}),
        "weights_mb": round(tensor_mb(model), 1), "peak_rss_growth_mb": round(rss_mb() - before, 1),
        "process_rss_mb": round(rss_mb(), 1), "threads": threads, "decode_threads": decode_threads,
        "compute": str(model.act_dtype).removeprefix("torch."),
    }


def quality(model, windows: list[list[int]], ref_path: Path) -> tuple[float | None, float]:  # noqa: ANN001
    import torch

    argmax, nll, n = [], 0.0, 0
    for w in windows:
        logits = model(torch.tensor([w]), 0, model.new_cache(len(w)), last_only=False)[0]
        argmax += logits.argmax(-1).tolist()
        nll += float(torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(w[1:]), reduction="sum"))
        n += len(w) - 1
    if model.quant == "fp32":
        ref_path.write_text(json.dumps(argmax))
    if not ref_path.exists():
        return None, round(math.exp(nll / n), 3)
    ref = json.loads(ref_path.read_text())
    return round(sum(a == b for a, b in zip(argmax, ref)) / len(ref), 4), round(math.exp(nll / n), 3)


def measure_hf(threads: int) -> dict:
    """Reference peer in the same run: HF transformers' Llama in bf16 on the same GGUF."""
    import torch
    from transformers import AutoModelForCausalLM

    from inference.gguf_file import default_model_path
    from inference.tokenizer import Tokenizer
    from inference.gguf_file import GGUFFile

    torch.set_num_threads(threads)
    path = default_model_path()
    before = rss_mb()
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.bfloat16).eval()
    load_s = time.perf_counter() - t
    prompt, _ = texts(Tokenizer.from_gguf(GGUFFile.open(path).metadata))
    x = torch.tensor([prompt])
    with torch.inference_mode():
        model(x[:, :64])
        prefill_s = best_of(3, lambda: model(x))
        gen = lambda: model.generate(x, max_new_tokens=DECODE_TOKENS, min_new_tokens=DECODE_TOKENS,  # noqa: E731
                                     do_sample=False)
        decode_s = best_of(2, gen) - prefill_s
    return {"engine": "hf-transformers-bf16", "prefill_tok_s": round(PREFILL_TOKENS / prefill_s, 1),
            "decode_tok_s": round(DECODE_TOKENS / decode_s, 1), "rss_mb": round(rss_mb() - before, 1),
            "load_s": round(load_s, 2), "top1_vs_fp32": None, "threads": threads}


def measure_llama_cpp(threads: int, decode_threads: int, ref_path: Path) -> dict:
    """The reference peer: llama.cpp through llama-cpp-python, same GGUF, same token ids.

    Runs in its own subprocess, so a crash (a default build's AMX kernel on this CPU, see
    docs/benchmarks.md) becomes a "skipped" line instead of ending the bench. Greedy decode reads
    the last logits straight from the context (``Llama.sample`` would build a sampler chain per
    token, llama-cpp-python overhead that is not llama.cpp's). ``rss_mb`` counts the mapped GGUF
    pages llama.cpp reads its weights from (use_mmap, its default), like our resident copy.
    llama.cpp has the same split as our engine: ``n_threads`` for generation, ``n_threads_batch``
    for the prompt.
    """
    import numpy as np
    from llama_cpp import Llama

    from inference.gguf_file import GGUFFile, default_model_path
    from inference.tokenizer import Tokenizer

    path = str(default_model_path())
    prompt, windows = texts(Tokenizer.from_gguf(GGUFFile.open(path).metadata))

    def load(**kw):  # noqa: ANN003, ANN202
        return Llama(model_path=path, n_threads=decode_threads, n_threads_batch=threads, n_batch=PREFILL_TOKENS,
                     n_ubatch=PREFILL_TOKENS, verbose=False, **kw)

    before, split_before = rss_mb(), resident_now()
    t = time.perf_counter()
    llm = load(n_ctx=PREFILL_TOKENS + DECODE_TOKENS + 8)
    load_s = time.perf_counter() - t
    model_mb = resident_growth(before)
    split = resident_split(split_before)
    split["model_rss_mb"] = round(split["rss_anon_mb"] + model_file_mb([path]), 1)
    n_vocab = llm.n_vocab()

    def last_argmax() -> int:
        return int(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,)).argmax())

    def prefill() -> None:
        llm.reset()
        llm.eval(prompt)

    def decode() -> float:
        prefill()  # not timed
        t = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            llm.eval([last_argmax()])
        return time.perf_counter() - t

    llm.eval(prompt[:64])  # warm-up, as for the local engines
    prefill_s = best_of(3, prefill)
    decode_s = min(decode() for _ in range(2))
    peak_mb = round(rss_mb() - before, 1)
    llm.close()  # frees the context and weights before the scorer loads
    scorer = load(n_ctx=EVAL_LEN + 8, logits_all=True)
    argmax = []
    for w in windows:
        scorer.reset()
        scorer.eval(w)
        argmax += np.asarray(scorer.scores[: len(w)]).argmax(-1).tolist()
    ref = json.loads(ref_path.read_text()) if ref_path.exists() else None
    top1 = round(sum(a == b for a, b in zip(argmax, ref)) / len(ref), 4) if ref else None
    import llama_cpp

    return {"engine": "llama.cpp", "prefill_tok_s": round(PREFILL_TOKENS / prefill_s, 1),
            "decode_tok_s": round(DECODE_TOKENS / decode_s, 1), "rss_mb": model_mb,
            "load_s": round(load_s, 2), "top1_vs_fp32": top1, **split, "peak_rss_growth_mb": peak_mb,
            "threads": threads, "decode_threads": decode_threads, "version": f"llama-cpp-python {llama_cpp.__version__}"}


def run_llama_cpp(threads: int, decode_threads: int, ref: Path) -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print(json.dumps({"engine": "llama.cpp", "skipped": "llama_cpp (llama-cpp-python) is not installed; "
                          "it builds from source (16-23 min on 2 cores), so the peer column is left out"}),
              flush=True)
        return
    done = subprocess.run([sys.executable, __file__, "--worker", "llama.cpp", "--ref", str(ref), "--threads",
                           str(threads), "--decode-threads", str(decode_threads)], capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        print(json.dumps({"engine": "llama.cpp", "skipped": f"worker failed (exit {done.returncode}): "
                          f"{done.stderr.strip()[-300:]}"}), flush=True)
        return
    print(lines[-1], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="fp32,int8,int4",
                    help="comma-separated; QUANT:N runs decode steps on N threads (default --decode-threads)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-threads", type=int, default=1)
    ap.add_argument("--compute", choices=("auto", "bf16", "fp32"), default="auto",
                    help="the quantized engines' prefill dtype (auto: bf16 on CPUs with native bf16, else fp32)")
    ap.add_argument("--hf", action="store_true", help="also run HF transformers bf16 as a reference line")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ref", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "hf":
        print(json.dumps(measure_hf(args.threads)), flush=True)
        return
    if args.worker == "llama.cpp":
        line = measure_llama_cpp(args.threads, args.decode_threads, Path(args.ref))
        print(json.dumps({**line, "loadavg_1m": round(os.getloadavg()[0], 2)}), flush=True)
        return
    if args.worker:
        quant, _, dt = args.worker.partition(":")
        line = measure_local(quant, args.threads, int(dt or args.decode_threads), Path(args.ref), args.compute)
        print(json.dumps({**line, "loadavg_1m": round(os.getloadavg()[0], 2)}), flush=True)
        return
    print(json.dumps({"note": "load average at the start", "loadavg": os.getloadavg()}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "fp32_argmax.json"
        engines = args.engines.split(",")
        common = ["--ref", str(ref), "--threads", str(args.threads), "--decode-threads", str(args.decode_threads),
                  "--compute", args.compute]
        if any(e.startswith("int8") for e in engines):  # GPTQ codes, once per model (bench/.cache)
            from bench.int8_calibrate import ensure_codes

            _, made = ensure_codes()
            if made:
                print(json.dumps({"note": "int8 codes calibrated", **made}), flush=True)
        if not any(e.startswith("fp32") for e in engines):  # the quality column needs the fp32 reference first
            subprocess.run([sys.executable, __file__, "--worker", "fp32", *common], check=True, capture_output=True)
        for spec in sorted(engines, key=lambda q: not q.startswith("fp32")):
            subprocess.run([sys.executable, __file__, "--worker", spec, *common], check=True)
        for dt in sorted({args.threads, args.decode_threads}, reverse=True):  # the n_threads=2 first
            run_llama_cpp(args.threads, dt, ref)
    if args.hf:
        subprocess.run([sys.executable, __file__, "--worker", "hf", "--threads", str(args.threads)], check=True)
    print(json.dumps({"note": "load average during the run", "loadavg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
