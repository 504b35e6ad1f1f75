"""``engram chat`` as a real subprocess: the real SmolLM2 engine, a real SQLite file; the second
message's memories include the first message."""
import os
import subprocess
import sys

from tests.helpers import ROOT
from tests.inference.smollm import require_model

ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_terminal_chat_shows_the_memories_used(tmp_path) -> None:
    require_model()
    db = tmp_path / "chat.db"
    cmd = [sys.executable, "-m", "api.cli", "--db", str(db), "chat", "--user-id", "ann", "--max-tokens", "8"]
    lines = "My cat Luna hates the rain.\nWhat is my cat called?\n\n"
    out = subprocess.run(cmd, input=lines, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600, check=True)
    turns = out.stdout.split("engram> ")
    assert len(turns) == 3, out.stdout
    assert "(no memories used)" in turns[0]
    assert "memory note" in turns[1] and "My cat Luna hates the rain." in turns[1]
    assert out.stdout.count("[ttft ") == 2 and "chunk tokens reused" in out.stdout
    assert (tmp_path / "chat.db.kv").is_dir()  # the chunk store keeps its KV beside the database
