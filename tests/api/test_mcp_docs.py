"""The MCP example of docs/integrations.md runs as written: it launches ``engram mcp`` over stdio."""
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.api.mcp_session import SERVER_ENV
from tests.helpers import ROOT


def _mcp_python_example() -> str:
    text = (ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("\n## MCP\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the MCP section has one Python example"
    return blocks[0]


def _engram_command(folder: Path) -> Path:
    """An ``engram`` command running this checkout. The MCP SDK starts stdio servers with only a
    few safe variables (PATH, HOME, ...), so PYTHONPATH cannot reach the server; the wrapper names it."""
    command = folder / "engram"
    command.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m api.cli "$@"\n')
    command.chmod(0o755)
    return command


def test_python_example_runs(tmp_path):
    script = tmp_path / "mcp_example.py"
    script.write_text(_mcp_python_example(), encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _engram_command(bin_dir)
    path = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    env = {**os.environ, **SERVER_ENV, "PATH": path}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("tools: ") and "'search_memory'" in lines[0] and "'entity_timeline'" in lines[0]
    assert any(line.startswith("hit: ") and "Lisbon" in line for line in lines)
    assert lines[-1] == "after delete: True not_found"
    assert (tmp_path / "engram.db").is_file()
