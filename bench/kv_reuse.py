"""KV-cache reuse: time to first token and quality of prefix caching and chunk reuse (CacheBlend).

Prints one JSON line per mode:
    {"mode": "full"|"prefix"|"reuse", "ratio", "ttft_ms", "top1_agreement", "mean_kl",
     "answer_agreement", "f1", ...}

    python bench/kv_reuse.py            # 20 HotpotQA dev questions, int4 (10-20 min on 2 shared cores)
    python bench/kv_reuse.py --quick    # 3 questions, the required modes only (under two minutes idle)
    python bench/kv_reuse.py --quant fp32 --questions 10
    python bench/kv_reuse.py --compute fp32   # int4 weights, fp32 compute: the exact paths are exact

Setup: each question's 10 paragraphs are the chunks of a ``SegmentedPrompt`` between a system
prefix and the question. Per question the chunk store is first filled by one request with the
paragraphs in one shuffled order (its TTFT is the ``reuse_cold`` line: chunks computed alone,
stored, then blended); every measured mode then sees the paragraphs in another shuffled order.

- ``full``: the whole prompt prefilled (the baseline, measured in the same run).
- ``prefix``: the prefix cache only (the system prefix's blocks hit; chunks are in a new order,
  so nothing after it can).
- ``reuse``: prefix cache + chunk KV from the store, moved by RoPE, selective recompute of
  ``ratio`` of the chunk tokens (``measure`` says whether K or V deviation chose them;
  ``sink_tokens`` of each chunk's first tokens recomputed first, within the same ratio; ``widen``
  2: layer 1 keeps twice the ratio and layer 5 narrows it, the default; 1: one selection at layer
  1, the earlier default, run beside it at 0.15 and 0.3).
- ``craft`` (Cache-Craft; ``--no-craft`` skips): after the first request, its chunks' exact KV in
  its order is stored (untimed, as a service does after a reply); then the paragraphs come in the
  *same* order (``order: same``: every chunk exact, no recompute) or with the first half in the
  same order (``half``: 5 exact, 5 blended). ``blend`` is the same prompt with every chunk blended.
  Each order has its own full-prefill reference and speedup base.

TTFT is the prefill (cache lookups, chunk placement, recompute) plus choosing the first token,
on a preallocated cache; tokenisation is excluded (equal for all modes). Quality is measured
against ``full`` on the same token ids: ``top1_agreement`` and ``mean_kl`` (KL(full || mode), nats)
over the answer positions (the full prefill's greedy answer, up to 16 tokens, teacher-forced
after each mode's prefill); ``answer_agreement`` = share of questions whose own greedy answer
equals the full prefill's; ``f1`` = SQuAD token F1 of the greedy answer against the gold answer.
``speedup`` = full TTFT / mode TTFT (means over questions).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import string  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "hotpotqa_dev.json"
ANSWER_TOKENS = 16
SYSTEM = (
    "<|im_start|>system\nYou are a question answering assistant. You are given several documents "
    "and one question. Read the documents, find the facts the question asks about, and answer with "
    "the shortest possible phrase taken from the documents: a name, a date, a number, a place, or "
    "yes or no. Do not explain and do not repeat the question.<|im_end|>\n<|im_start|>user\nDocuments:\n\n"
)
# (mode, ratio, measure, sink tokens, order, widen) in the order printed; order: "new" (another
# shuffle than the request that filled the store), "same" (that request's order), "half" (its first
# half, then the rest shuffled); widen: the check layer keeps widen x ratio of the reused tokens and
# the refine layer narrows them to ratio (1.0: one selection at the check layer; W: BlendConfig's default)
W = None
MODES = [("full", None, None, 0, "new", W), ("prefix", None, None, 0, "new", W), ("reuse", 0.0, "k", 0, "new", W),
         ("reuse", 0.15, "k", 0, "new", W), ("reuse", 0.15, "k", 0, "new", 1.0), ("reuse", 0.15, "k", 4, "new", W),
         ("reuse", 0.3, "k", 0, "new", W), ("reuse", 0.3, "k", 0, "new", 1.0), ("reuse", 1.0, "k", 0, "new", W)]
MEASURE_MODES = [("reuse", 0.15, "v", 0, "new", W), ("reuse", 0.15, "kv", 0, "new", W), ("reuse", 0.3, "v", 0, "new", W)]
# Cache-Craft: chunks after the same chunks as when they were stored are exact (each order has its
# own full-prefill reference); "blend" = the same orders with exact_context off
CRAFT_MODES = [("full", None, None, 0, "same", W), ("craft", 0.15, "k", 0, "same", W),
               ("blend", 0.15, "k", 0, "same", W), ("full", None, None, 0, "half", W),
               ("craft", 0.15, "k", 0, "half", W), ("blend", 0.15, "k", 0, "half", W)]


def normalise(text: str) -> list[str]:
    """SQuAD answer normalisation: lower case, no punctuation or articles, split on whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def f1(pred: str, gold: str) -> float:
    p, g = normalise(pred), normalise(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or not common:
        return float(p == g)
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def segmented(item: dict, order: list[int]):  # noqa: ANN201
    from inference.segments import SegmentedPrompt

    paras = [f"{title}: {''.join(sents).strip()}\n\n" for title, sents in item["context"]]
    return SegmentedPrompt(prefix=SYSTEM, chunks=[paras[i] for i in order],
                           suffix=f"Question: {item['question']}<|im_end|>\n<|im_start|>assistant\nThe answer is:")


class Runner:
    """One engine, one preallocated cache; runs a prefill in each mode and reads answers."""

    def __init__(self, quant: str, block_size: int, compute: str = "auto"):
        import torch

        from inference.chunk_store_memory import MemoryChunkStore
        from inference.compute_dtype import NAMES
        from inference.local_engine import LocalEngine

        self.torch = torch
        self.store = MemoryChunkStore()
        self.engine = LocalEngine(quant=quant, threads=2, chunk_store=self.store, prefix_cache_blocks=16,
                                  block_size=block_size, compute_dtype=NAMES[compute])
        self.model, self.tok = self.engine.model, self.engine.tokenizer
        self.cache = self.model.new_cache(4096)
        self.stop = set(self.tok.eos_token_ids) | {self.tok.encode("\n")[0]}

    def prefill(self, mode: str, ratio: float | None, measure: str | None, prompt, sink: int = 0,  # noqa: ANN001, ANN201
                widen: float | None = W):
        from inference.blend import BlendConfig
        from inference.prefill import PlainPrefill, SegmentPrefill
        from inference.segments import CacheStats

        e, segs = self.engine, self.engine.encode_segments(prompt)
        if mode == "full":
            fill = PlainPrefill(self.model, segs.ids)
        elif mode == "prefix":
            fill = PlainPrefill(self.model, segs.ids, e.prefix_cache)
        else:  # "reuse" and "blend": every chunk blended; "craft": exact where the context repeats
            fill = SegmentPrefill(self.model, segs, self.store, e.model_id, e.quant, e.prefix_cache,
                                  blend=BlendConfig(ratio=ratio, measure=measure, sink_tokens=sink,
                                                    exact_context=mode == "craft",
                                                    **({} if widen is None else {"widen": widen})))
        stats = CacheStats()
        self.cache.truncate(0)
        t = time.perf_counter()
        done = fill(self.cache, 0, stats)
        first = int(done.logits.argmax())
        stats.ttft_ms = (time.perf_counter() - t) * 1000
        return segs, done.logits, first, stats

    def store_in_context(self, prompt) -> None:  # noqa: ANN001
        """The exact KV of ``prompt``'s chunks in its order (what a service's warm step keeps)."""
        self.engine.prepare_context(prompt)

    def save_prefix(self, segs) -> None:  # noqa: ANN001
        """What the Generator keeps after a blended request: the exact prefix's full blocks."""
        self.engine.prefix_cache.save(segs.ids, self.cache, len(segs.prefix))

    def answer_logits(self, n: int, logits, answer: list[int]):  # noqa: ANN001, ANN201
        """Logits at each answer position, the answer teacher-forced after the prompt: [A, V]."""
        if len(answer) <= 1:
            return logits[None]
        rest = self.model(self.torch.tensor([answer[:-1]]), n, self.cache, last_only=False)[0]
        return self.torch.cat([logits[None], rest])

    def greedy(self, n: int, first: int) -> list[int]:
        out, tok = [], first
        for i in range(ANSWER_TOKENS):
            if tok in self.stop:
                break
            out.append(tok)
            tok = int(self.model(self.torch.tensor([[tok]]), n + i, self.cache)[0, -1].argmax())
        return out


def run(args: argparse.Namespace) -> None:
    import torch

    data = json.loads(DATA.read_text())[: args.questions]
    rng = random.Random(args.seed)
    r = Runner(args.quant, args.block_size, args.compute)
    rows: dict[tuple, list[dict]] = defaultdict(list)
    warm = segmented(data[0], list(range(10)))
    r.prefill("full", None, None, warm)  # first-call overheads out of the measurement
    modes = MODES + ([] if args.quick else MEASURE_MODES) + (CRAFT_MODES if args.craft else [])
    for item in data:
        cold_order, order = rng.sample(range(10), 10), rng.sample(range(10), 10)
        half = cold_order[:5] + rng.sample(cold_order[5:], 5)
        orders = {"new": order, "same": cold_order, "half": half}
        segs, _, _, cold = r.prefill("reuse", 0.15, "k", segmented(item, cold_order))  # fills the store
        r.save_prefix(segs)
        rows[("reuse_cold", 0.15, "k", 0, "new", W)].append({"ttft_ms": cold.ttft_ms})
        if args.craft:
            r.store_in_context(segmented(item, cold_order))  # untimed, as after a reply
        refs: dict[str, tuple] = {}
        for mode, ratio, measure, sink, which, widen in modes:
            prompt = segmented(item, orders[which])
            segs, logits, first, stats = r.prefill(mode, ratio, measure, prompt, sink, widen)
            n = len(segs.ids)
            answer = r.greedy(n, first)  # writes only positions >= n: the prompt's KV stays
            if which not in refs:  # full prefill (first mode of each order): the reference
                ref_answer = answer or [first]
                refs[which] = (ref_answer, r.tok.decode(answer), None, stats.ttft_ms)
            ref_answer, ref_text, ref, ref_ttft = refs[which]
            got = r.answer_logits(n, logits, ref_answer)
            if ref is None:
                refs[which] = (ref_answer, ref_text, got, ref_ttft)
                ref = got
            text = r.tok.decode(answer)
            rows[(mode, ratio, measure, sink, which, widen)].append({
                "ttft_ms": stats.ttft_ms, "full_ttft_ms": ref_ttft,
                "top1": float((got.argmax(-1) == ref.argmax(-1)).float().mean()),
                "kl": float(torch.nn.functional.kl_div(got.log_softmax(-1), ref.log_softmax(-1), log_target=True,
                                                       reduction="none").sum(-1).mean()),
                "agree": float(normalise(text) == normalise(ref_text)), "f1": f1(text, item["answer"]),
                "recomputed": stats.recomputed_tokens, "prefix_hit": stats.prefix_hit_tokens,
                "exact": stats.chunk_exact_tokens, "prompt": stats.prompt_tokens,
            })
        r.store.clear()  # one question's chunks at a time in RAM
    report(rows, args)


def report(rows: dict[tuple, list[dict]], args: argparse.Namespace) -> None:
    from inference.blend import BlendConfig

    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    default_widen = BlendConfig().widen
    full_ttft = mean([x["ttft_ms"] for x in rows[("full", None, None, 0, "new", W)]])
    for (mode, ratio, measure, sink, which, widen), xs in rows.items():
        base = mean([x["full_ttft_ms"] for x in xs]) if "full_ttft_ms" in xs[0] else full_ttft
        line = {"mode": mode, "order": which, "ratio": ratio, "sink_tokens": sink,
                "ttft_ms": round(mean([x["ttft_ms"] for x in xs]), 1),
                "speedup": round(base / mean([x["ttft_ms"] for x in xs]), 2)}
        if "top1" in xs[0]:
            line |= {"top1_agreement": round(mean([x["top1"] for x in xs]), 4),
                     "mean_kl": round(mean([x["kl"] for x in xs]), 4),
                     "answer_agreement": round(mean([x["agree"] for x in xs]), 3),
                     "f1": round(mean([x["f1"] for x in xs]), 3),
                     "prompt_tokens": round(mean([x["prompt"] for x in xs]), 1),
                     "recomputed_tokens": round(mean([x["recomputed"] for x in xs]), 1),
                     "exact_chunk_tokens": round(mean([x["exact"] for x in xs]), 1),
                     "prefix_hit_tokens": round(mean([x["prefix_hit"] for x in xs]), 1)}
        line |= {"measure": measure, "widen": None if ratio is None else widen or default_widen, "questions": len(xs),
                 "quant": args.quant, "compute": args.compute}
        print(json.dumps(line), flush=True)
    print(json.dumps({"note": "load average during the run", "loadavg": os.getloadavg()}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 questions, required modes (under two minutes)")
    ap.add_argument("--questions", type=int, default=None, help="default 20 (3 with --quick)")
    ap.add_argument("--quant", default="int4")
    ap.add_argument("--compute", choices=("auto", "bf16", "fp32"), default="auto",
                    help="the quantized engine's prefill dtype (auto: bf16 on CPUs with native bf16, else fp32)")
    ap.add_argument("--block-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-craft", dest="craft", action="store_false", help="skip the Cache-Craft modes")
    args = ap.parse_args()
    if args.questions is None:
        args.questions = 3 if args.quick else 20
    run(args)


if __name__ == "__main__":
    main()
