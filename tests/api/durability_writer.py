"""A writer process for the durability tests: adds notes until it is killed.

    python -m tests.api.durability_writer --database-url URL --index-dir DIR --acks FILE

Each note (or batch) is acknowledged by appending its ids, one line per call, to ``--acks``
*after* ``Engram.add``/``add_many`` returned — the moment a REST client would get its 201. Every
``--save-every`` calls it saves the derived index, so a kill can land before, during or after a
save. One job worker drains the graph jobs meanwhile, claiming them in batches, so a kill usually
leaves some jobs ``running`` under a lease that nobody will renew. Never exits by itself.
"""
from __future__ import annotations

import argparse
import os

from api.config import EngramConfig
from api.engram import Engram
from bench import synthetic
from memory.config import JobConfig, MemoryConfig


def config(lease_s: float) -> EngramConfig:
    """The configuration both the writer and the restarted process use (a short lease, so a dead
    worker's claims run out within the test)."""
    return EngramConfig(memory=MemoryConfig(jobs=JobConfig(lease_s=lease_s, backoff_s=0.1)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--index-dir", required=True)
    ap.add_argument("--acks", required=True)
    ap.add_argument("--lease-s", type=float, default=2.0)
    ap.add_argument("--save-every", type=int, default=7)
    args = ap.parse_args()
    texts = synthetic.notes(100_000, seed=11)
    mem = Engram(database_url=args.database_url, index_dir=args.index_dir, config=config(args.lease_s), workers=1)
    acks = os.open(args.acks, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    call = 0
    while True:
        user = f"u{call % 3}"
        if call % 4 == 3:  # every fourth call is a batch (one transaction for several notes)
            notes = mem.add_many([{"content": f"[w{call}.{j}] {texts[(call * 5 + j) % len(texts)]}", "user_id": user}
                                  for j in range(4)])
        else:
            notes = mem.add(f"[w{call}] {texts[call % len(texts)]}", user_id=user)
        # One write() per acknowledgement: a kill leaves whole lines, or a last partial one.
        os.write(acks, (" ".join(n.id for n in notes) + "\n").encode())
        call += 1
        if call % args.save_every == 0:
            mem.save_index()


if __name__ == "__main__":
    main()
