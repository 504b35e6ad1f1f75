"""Several server processes (uvicorn --workers N) share a tenant's SQLite file: each one's index
follows the others' writes. Two registries stand for two worker processes."""
import time

from api.settings import Settings
from api.tenants import TenantRegistry


def _registry(data_dir, embedder, workers):
    return TenantRegistry(Settings(data_dir=data_dir, workers=workers, durable=False, job_workers=0, llm="none"), embedder)


def test_a_note_added_through_one_worker_is_found_through_another(tmp_path, embedder):
    one, two = _registry(tmp_path, embedder, 2), _registry(tmp_path, embedder, 2)
    try:
        reader = two.get("acme")  # opened first: only the change feed can bring the note in
        assert reader.follower is not None
        (note,) = one.get("acme").add("The standup moved to 9am on Tuesdays.", user_id="u")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not reader.index.contains(note.id):
            time.sleep(0.05)
        assert reader.search("when is the standup?", user_id="u", include_facts=False)[0].id == note.id
    finally:
        one.close()
        two.close()


def test_one_worker_does_not_follow(tmp_path, embedder):
    single = _registry(tmp_path, embedder, 1)
    try:
        assert single.get("acme").follower is None
    finally:
        single.close()
