"""The server's startup objects stay out of the garbage collector's full passes (api/heap.py)."""
import gc

from tests.api.rest_support import start


def test_startup_objects_are_frozen_while_serving_and_thawed_at_shutdown(tmp_path, embedder):
    client, app = start(tmp_path, embedder)
    service = app.state.service
    with client:
        assert client.get("/readyz").status_code == 200
        assert gc.get_freeze_count() > 0
        # A full collection no longer visits what the app built at startup.
        assert all(obj is not service for obj in gc.get_objects())
        assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == 0
    assert any(obj is service for obj in gc.get_objects())
