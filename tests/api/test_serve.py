"""End to end on a real server: ``engram keys create`` then ``engram serve`` (uvicorn on 127.0.0.1,
a free port), the SDK over TCP, ``engram keys revoke`` taking effect, /metrics and /readyz."""
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from api.client import Client
from api.errors import Unauthorized
from memory.errors import NotFound
from tests.helpers import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _engram(env, *args):
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("served")
    env = {**os.environ, "ENGRAM_DATA_DIR": str(data), "ENGRAM_ADMIN_KEY": "served-admin",
           "ENGRAM_KEY_CACHE_SECONDS": "0", "ENGRAM_DURABLE": "false", "ENGRAM_LLM": "none", "OMP_WAIT_POLICY": "PASSIVE",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    key = _engram(env, "keys", "create", "--tenant", "acme", "--label", "e2e").stdout.strip().splitlines()[-1]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url, key, env
    finally:
        proc.terminate()
        proc.wait(timeout=180)  # serve waits for its engram worker's job in hand (slow on a loaded machine)


def _wait_ready(url, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("server not ready in time")


def test_keys_create_prints_the_key_last(server):
    _, key, _ = server
    assert key.startswith("egm_") and len(key) > 40


def test_sdk_over_a_real_server(server):
    url, key, _ = server
    with Client(url, api_key=key) as mem:
        [note] = mem.add("I moved to Lisbon in May", user_id="ann")
        mem.add([{"role": "user", "content": "Our dog Rex loves the beach"}], user_id="ann")
        hits = mem.search("which city did I move to, Lisbon?", user_id="ann", top_k=1)
        assert hits[0]["id"] == note["id"]
        assert mem.get(note["id"])["recall_count"] == 2  # the search and this get
        with pytest.raises(NotFound):
            mem.get("00000000-0000-0000-0000-000000000000")
    metrics = httpx.get(f"{url}/metrics").text
    assert 'engram_http_request_duration_seconds_count{method="POST",route="/v1/search",status="200"}' in metrics
    assert "engram_store_notes 2.0" in metrics


def test_revoke_from_the_cli_takes_effect(server):
    url, _, env = server
    key = _engram(env, "keys", "create", "--tenant", "acme").stdout.strip().splitlines()[-1]
    with Client(url, api_key=key) as mem:
        assert mem.get_all(user_id="nobody") == []
        _engram(env, "keys", "revoke", key.split("_")[1])
        with pytest.raises(Unauthorized):
            mem.get_all(user_id="nobody")


def _python_blocks(section: str) -> list[str]:
    """The ```python blocks of docs/integrations.md under a ``## <section>`` heading."""
    import re

    text = (ROOT / "docs" / "integrations.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


@pytest.mark.parametrize("section", ["REST", "Python SDK"])
def test_integration_examples_run_against_the_server(server, section, tmp_path):
    url, _, env = server
    key = _engram(env, "keys", "create", "--tenant", "docs").stdout.strip().splitlines()[-1]
    blocks = _python_blocks(section)
    assert blocks
    printed = ""
    for i, code in enumerate(blocks):
        script = tmp_path / f"example_{i}.py"
        script.write_text(code)
        out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**env, "ENGRAM_URL": url, "ENGRAM_KEY": key, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr
        printed += out.stdout
    if section == "REST":
        assert "stored as" in printed and "- Ann is allergic to peanuts" in printed
    else:
        assert "From memory: Ann's daughter Mia starts school in September" in printed
        assert "typed error: not_found" in printed and "Sunday" in printed
