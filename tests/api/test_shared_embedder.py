"""The service's shared embedder: one call at a time across tenants and threads, and a request's
call goes before a waiting job worker's call (real MiniLM)."""
import threading
import time

from api.app import _LazyEmbedder


class _Recording:
    """Wraps the real embedder and records the order of calls and any overlap."""

    def __init__(self, inner):
        self.inner, self.order, self.active, self.overlap = inner, [], 0, False
        self.model_id, self.dim = inner.model_id, inner.dim

    def embed(self, texts):
        self.active += 1
        self.overlap |= self.active > 1
        self.order.append(threading.current_thread().name)
        try:
            time.sleep(0.05)  # hold the model long enough for the others to queue up
            return self.inner.embed(texts)
        finally:
            self.active -= 1


def test_calls_never_overlap_and_requests_go_first(embedder):
    rec = _Recording(embedder)
    shared = _LazyEmbedder(rec, 8)
    holder = threading.Thread(target=shared.embed, args=(["first"],), name="request-0")
    holder.start()
    time.sleep(0.01)
    jobs = [threading.Thread(target=shared.embed, args=([f"job {i}"],), name=f"engram-jobs-{i}") for i in range(3)]
    for t in jobs:
        t.start()
    time.sleep(0.01)
    requests = [threading.Thread(target=shared.embed, args=([f"req {i}"],), name=f"request-{i + 1}") for i in range(2)]
    for t in requests:
        t.start()
    for t in [holder, *jobs, *requests]:
        t.join()
    assert not rec.overlap
    assert rec.order[0] == "request-0"
    assert set(rec.order[1:3]) == {"request-1", "request-2"}
    assert all(name.startswith("engram-jobs") for name in rec.order[3:])
    vec = shared.embed(["hello"])
    assert vec.shape == (1, embedder.dim)
