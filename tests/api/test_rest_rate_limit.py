"""Per-key rate limit (ENGRAM_RATE_LIMIT): a token bucket per key, 429 with Retry-After and a JSON
body past the burst, other keys unaffected, tokens back after the wait; off by default."""
import time

import pytest

from api.rate_limit import TokenBuckets, bucket_name
from tests.api.rest_support import ADMIN, bearer, start


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_bucket_allows_the_burst_then_the_rate():
    clock = _Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]
    assert buckets.take("a") == pytest.approx(0.5)      # one token comes back every 1/rate s
    assert buckets.take("b") is None                    # another key has its own bucket
    clock.now += 0.5
    assert buckets.take("a") is None and buckets.take("a") == pytest.approx(0.5)
    clock.now += 60
    assert [buckets.take("a") for _ in range(4)][:3] == [None, None, None]  # refilled to the burst, no more


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (1, 0)])
def test_bucket_settings_are_checked_even_under_python_O(rate, burst):
    from memory.errors import InvalidInput

    with pytest.raises(InvalidInput, match="positive rate"):
        TokenBuckets(rate=rate, burst=burst)


def test_bucket_memory_is_bounded_and_holds_no_clear_key(monkeypatch):
    import api.rate_limit as rl

    monkeypatch.setattr(rl, "_MAX_BUCKETS", 50)
    clock = _Clock()
    buckets = TokenBuckets(rate=10.0, burst=1, clock=clock)
    for i in range(200):
        clock.now += 1.0  # every earlier bucket has refilled: it may go
        buckets.take(f"k{i}")
    assert len(buckets._buckets) <= 51
    clear = "egm_abc123_s3cr3tpart"
    assert bucket_name(clear) == "id:abc123" and "s3cr3t" not in bucket_name("admin-s3cr3t")


def test_rest_429_with_retry_after_per_key(tmp_path, embedder):
    # one token per 4 s: the four requests below must not see a refill even on a loaded machine
    # (at 1 per second a CI run spent over a second on them and the fourth passed)
    client, app = start(tmp_path, embedder, rate_limit=0.25, rate_limit_burst=3)
    with client:
        admin = bearer(ADMIN)
        client.post("/v1/admin/tenants", json={"id": "acme"}, headers=admin)
        a = bearer(client.post("/v1/admin/tenants/acme/keys", json={}, headers=admin).json()["key"])
        b = bearer(client.post("/v1/admin/tenants/acme/keys", json={}, headers=admin).json()["key"])
        time.sleep(1.0)  # the admin's own bucket: the calls above spent three tokens
        codes = [client.get("/v1/memories", params={"user_id": "u"}, headers=a).status_code for _ in range(4)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = client.get("/v1/memories", params={"user_id": "u"}, headers=a)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited" and r.json()["message"]
        assert 1 <= int(r.headers["Retry-After"]) <= 4
        assert client.get("/v1/memories", params={"user_id": "u"}, headers=b).status_code == 200  # its own bucket
        time.sleep(float(r.headers["Retry-After"]))
        assert client.get("/v1/memories", params={"user_id": "u"}, headers=a).status_code == 200
        # Wrong secrets under a's key id share a's bucket: guessing is throttled before any lookup.
        key_id = a["Authorization"].split("_")[1]
        wrong = [client.get("/v1/memories", params={"user_id": "u"}, headers=bearer(f"egm_{key_id}_guess{i}")).status_code
                 for i in range(4)]
        assert 429 in wrong and set(wrong) <= {401, 429}
        assert client.get("/healthz").status_code == 200  # operations routes have no key and no limit
        assert 'engram_http_errors_total{code="rate_limited"}' in client.get("/metrics").text


def test_off_by_default(tmp_path, embedder):
    from api.settings import Settings

    assert Settings().rate_limit == 0
    client, app = start(tmp_path, embedder)
    assert app.state.service.limiter is None
    with client:
        client.post("/v1/admin/tenants", json={"id": "acme"}, headers=bearer(ADMIN))
        key = bearer(client.post("/v1/admin/tenants/acme/keys", json={}, headers=bearer(ADMIN)).json()["key"])
        assert {client.get("/v1/memories", params={"user_id": "u"}, headers=key).status_code for _ in range(50)} == {200}


def _two_apps(tmp_path, embedder, **limits):
    """Two apps on one data dir, as two `engram serve` processes would be, and a key valid on both."""
    first, _ = start(tmp_path, embedder, **limits)
    second, _ = start(tmp_path, embedder, **limits)
    return first, second


def _alternate(first, second, key, n):
    return [(first if i % 2 == 0 else second).get("/v1/memories", params={"user_id": "u"}, headers=key).status_code
            for i in range(n)]


def test_redis_shares_one_limit_between_processes(tmp_path, embedder):
    import redis

    limits = {"rate_limit": 0.2, "rate_limit_burst": 3}
    redis.Redis(host="127.0.0.1").delete("engram:rate:" + bucket_name(ADMIN))  # a run seconds ago used it
    first, second = _two_apps(tmp_path / "shared", embedder, rate_limit_redis_url="redis://127.0.0.1:6379/0", **limits)
    with first, second:
        first.post("/v1/admin/tenants", json={"id": "acme"}, headers=bearer(ADMIN))
        key = bearer(first.post("/v1/admin/tenants/acme/keys", json={}, headers=bearer(ADMIN)).json()["key"])
        assert _alternate(first, second, key, 5) == [200, 200, 200, 429, 429]  # one bucket of 3 for both
        r = second.get("/v1/memories", params={"user_id": "u"}, headers=key)
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 5
    # Without Redis each process has its own bucket: the same key gets the burst from each.
    first, second = _two_apps(tmp_path / "local", embedder, **limits)
    with first, second:
        first.post("/v1/admin/tenants", json={"id": "acme"}, headers=bearer(ADMIN))
        key = bearer(first.post("/v1/admin/tenants/acme/keys", json={}, headers=bearer(ADMIN)).json()["key"])
        assert _alternate(first, second, key, 8) == [200] * 6 + [429, 429]


def test_redis_down_lets_requests_through(tmp_path, embedder, caplog):
    from tests.api.served_support import free_port

    client, app = start(tmp_path, embedder, rate_limit=0.2, rate_limit_burst=1,
                        rate_limit_redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with client:
        client.post("/v1/admin/tenants", json={"id": "acme"}, headers=bearer(ADMIN))
        key = bearer(client.post("/v1/admin/tenants/acme/keys", json={}, headers=bearer(ADMIN)).json()["key"])
        assert {client.get("/v1/memories", params={"user_id": "u"}, headers=key).status_code for _ in range(3)} == {200}
    assert "Redis unavailable" in caplog.text
