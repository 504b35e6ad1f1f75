"""``engram``: the command line. Usage: ``engram --db engram.db search "where do I live" --user-id ann``.

Commands: add, ingest, search, show, history, consolidate, restore, stats, demo, chat; for the REST
service ``serve`` (uvicorn; it starts and supervises an ``engram worker`` process for the job
queue), ``worker`` and ``keys create|list|revoke`` (settings from ``ENGRAM_*`` variables);
``mcp`` serves the memory to MCP clients (stdio, or streamable HTTP with ``--transport http``).
Machine-readable commands print JSON (one object per line); ``demo`` prints a human tour.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Entry points set these before anything imports torch (see README, "Environment").
_PROCESS_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "OPENBLAS_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "TOKENIZERS_PARALLELISM": "false",
}


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (2 for bad input, 1 for other Engram errors)."""
    for key, value in _PROCESS_ENV.items():
        os.environ.setdefault(key, value)
    args = _parser().parse_args(argv)
    from memory.errors import EngramError, InvalidInput

    try:
        return int(args.func(args) or 0)
    except InvalidInput as exc:
        print(json.dumps({"error": exc.code, "message": str(exc)}), file=sys.stderr)
        return 2
    except EngramError as exc:
        print(json.dumps({"error": exc.code, "message": str(exc)}), file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engram", description="Engram agent memory")
    p.add_argument("--db", default=os.environ.get("ENGRAM_DB", "engram.db"), help="SQLite file (default: engram.db)")
    p.add_argument("--database-url", default=os.environ.get("ENGRAM_DATABASE_URL") or None,
                   help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: ENGRAM_DATABASE_URL); overrides --db")
    p.add_argument("--db-schema", default=os.environ.get("ENGRAM_DB_SCHEMA") or None,
                   help="PostgreSQL schema to work in, created if missing (default: ENGRAM_DB_SCHEMA)")
    sub = p.add_subparsers(dest="command", required=True)

    add = sub.add_parser("add", help="store one note")
    add.add_argument("content")
    _scope_args(add)
    add.add_argument("--metadata", type=json.loads, default=None, help="JSON object")
    add.add_argument("--timestamp", default=None, help="ISO-8601 time the thing happened")
    add.add_argument("--role", default=None)
    add.set_defaults(func=_cmd_add)

    ingest = sub.add_parser("ingest", help="store a JSONL file of turns {content, role?, user_id?, timestamp?, ...}")
    ingest.add_argument("file", type=Path)
    _scope_args(ingest)
    ingest.add_argument("--batch-size", type=int, default=None, help="notes per transaction (default: add_many's)")
    ingest.set_defaults(func=_cmd_ingest)

    search = sub.add_parser("search", help="hybrid search; prints one JSON hit per line")
    search.add_argument("query")
    _scope_args(search)
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--filters", type=json.loads, default=None, help="JSON filter, mem0 operators")
    search.add_argument("--now", default=None, help="ask as of this time (ISO-8601)")
    search.add_argument("--include-archived", action="store_true")
    search.set_defaults(func=_cmd_search)

    for name, func in (("show", _cmd_show), ("history", _cmd_history)):
        cmd = sub.add_parser(name, help=f"{name} one note")
        cmd.add_argument("id")
        cmd.set_defaults(func=func)

    cons = sub.add_parser("consolidate", help="archive notes whose retention fell below the threshold")
    _scope_args(cons)
    cons.add_argument("--now", default=None)
    cons.add_argument("--threshold", type=float, default=None)
    cons.set_defaults(func=_cmd_consolidate)

    restore = sub.add_parser("restore", help="restore archived notes")
    restore.add_argument("ids", nargs="+")
    restore.set_defaults(func=_cmd_restore)

    sub.add_parser("stats", help="counts").set_defaults(func=_cmd_stats)
    demo = sub.add_parser("demo", help="ingest the sample conversation and show search, retention and links")
    demo.add_argument("--out", type=Path, default=None, help="folder for the demo database (default: a new temp folder)")
    demo.set_defaults(func=_cmd_demo)
    _service_commands(sub)

    mcp = sub.add_parser("mcp", help="serve the memory to MCP clients (stdio, or streamable HTTP)")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP only (default: 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP only (default: 8765)")
    mcp.add_argument("--path", default="/mcp", help="HTTP endpoint path (default: /mcp)")
    mcp.add_argument("--url", default=None, help="serve a running Engram service (REST) instead of --db")
    mcp.add_argument("--api-key", default=os.environ.get("ENGRAM_KEY"), help="tenant key for --url (default: $ENGRAM_KEY)")
    mcp.add_argument("--token", default=os.environ.get("ENGRAM_MCP_TOKEN"),
                     help="HTTP only: require 'Authorization: Bearer <token>' (default: $ENGRAM_MCP_TOKEN; "
                          "required off loopback)")
    mcp.set_defaults(func=_cmd_mcp)
    return p


def _service_commands(sub: Any) -> None:
    chat = sub.add_parser("chat", help="terminal chat with memory (local SmolLM2), showing the memories used")
    _scope_args(chat)
    chat.add_argument("--max-tokens", type=int, default=128)
    chat.set_defaults(func=_cmd_chat)

    serve = sub.add_parser("serve", help="run the REST API (settings from ENGRAM_* variables)")
    serve.add_argument("--host", default=None, help="default: ENGRAM_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: ENGRAM_PORT or 8000")
    serve.add_argument("--workers", type=int, default=None, help="default: ENGRAM_WORKERS or 1")
    serve.add_argument("--demo", action="store_true",
                       help="create a key for tenant 'demo' and print the chat demo's URL with it")
    serve.set_defaults(func=_cmd_serve)

    worker = sub.add_parser("worker", help="run every tenant's enrichment jobs (serve starts one; "
                                           "settings from ENGRAM_*)")
    worker.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone (set by serve)")
    worker.add_argument("--nice", type=int, default=0, help="add this to the process's niceness")
    worker.set_defaults(func=_cmd_worker)

    keys = sub.add_parser("keys", help="API keys of the REST service").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key (and the tenant if new); the key is on the last line")
    create.add_argument("--tenant", required=True)
    create.add_argument("--label", default="")
    create.set_defaults(func=_cmd_keys_create)
    listing = keys.add_parser("list", help="a tenant's keys (never the secrets)")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(func=_cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its id (the part after 'egm_')")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_cmd_keys_revoke)


def _scope_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user-id", default=None)
    p.add_argument("--agent-id", default=None)
    p.add_argument("--session-id", default=None)


def _scope(args: argparse.Namespace) -> dict[str, str | None]:
    return {"user_id": args.user_id, "agent_id": args.agent_id, "session_id": args.session_id}


def _open(args: argparse.Namespace) -> Any:
    from api.engram import Engram

    if args.database_url:
        return Engram(database_url=args.database_url, db_schema=args.db_schema)
    return Engram(args.db, db_schema=args.db_schema)


def _print(obj: Any) -> None:
    print(json.dumps(obj, default=str, ensure_ascii=False))


def _cmd_add(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        data: Any = args.content if args.role is None else [{"role": args.role, "content": args.content}]
        for note in mem.add(data, metadata=args.metadata, timestamp=args.timestamp, **_scope(args)):
            _print(_note_json(note))
        mem.wait_for_jobs()  # a command is short-lived: the graph is complete when it returns
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    records = list(_read_jsonl(args.file, _scope(args)))
    with _open(args) as mem, tqdm(total=len(records), unit="note", file=sys.stderr) as bar:
        sized = {"batch_size": args.batch_size} if args.batch_size is not None else {}
        notes = mem.add_many(records, progress=bar.update, **sized)
        mem.wait_for_jobs(timeout=3600)  # the graph is complete when the command returns
    _print({"ingested": len(notes), "file": str(args.file)})
    return 0


def _read_jsonl(path: Path, default_scope: dict[str, str | None]) -> Iterator[dict[str, Any]]:
    from memory.errors import InvalidInput

    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}:{lineno}: not JSON: {exc.msg}") from exc
            if isinstance(record, dict):
                for key, value in default_scope.items():
                    if value is not None:
                        record.setdefault(key, value)
            yield record


def _cmd_search(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        hits = mem.search(args.query, top_k=args.top_k, filters=args.filters, now=args.now,
                          include_archived=args.include_archived, **_scope(args))
        for hit in hits:
            _print(hit.as_dict())
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        _print(_note_json(mem.get(args.id)))
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        for entry in mem.history(args.id):
            _print({"id": entry.id, "note_id": entry.note_id, "action": entry.action, "old": entry.old,
                    "new": entry.new, "actor": entry.actor, "at": entry.at})
    return 0


def _cmd_consolidate(args: argparse.Namespace) -> int:
    scope = {k: v for k, v in _scope(args).items() if v is not None}
    with _open(args) as mem:
        ids = mem.consolidate(now=args.now, threshold=args.threshold, **scope)
    _print({"archived": len(ids), "ids": ids})
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        _print({"restored": mem.restore(args.ids)})
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as mem:
        _print(mem.stats())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from api.demo import run_demo

    return run_demo(args.out)


def _cmd_mcp(args: argparse.Namespace) -> int:
    import logging

    from api.mcp_auth import require_token
    from api.mcp_backends import EmbeddedMemory, RemoteMemory
    from api.mcp_server import serve_http, serve_stdio

    if args.transport == "http":
        require_token(args.host, args.token)  # before opening anything

    # stdout is the protocol channel under stdio: diagnostics go to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.url is not None:
        from api.client import Client

        memory: Any = Client(args.url, api_key=args.api_key)
        backend: Any = RemoteMemory(memory)
    else:
        memory = _open(args)
        backend = EmbeddedMemory(memory)
    with memory:
        if args.transport == "stdio":
            serve_stdio(backend)
        else:
            print(f"engram MCP server on http://{args.host}:{args.port}{args.path}", file=sys.stderr, flush=True)
            serve_http(backend, host=args.host, port=args.port, path=args.path, token=args.token)


def _cmd_chat(args: argparse.Namespace) -> int:
    from api.chat.terminal import chat_loop, open_local_pipeline

    scope = _scope(args)
    if all(v is None for v in scope.values()):
        scope["user_id"] = "me"
    pipeline = open_local_pipeline(args.db)
    with _open(args) as mem:
        if sys.stdin.isatty():
            print("Chat with memory; an empty line ends it.", file=sys.stderr)
        chat_loop(pipeline, mem, scope, sys.stdin, max_tokens=args.max_tokens)
        mem.wait_for_jobs(timeout=30)  # the graph learns from this session before we leave
    pipeline.engine.chunk_store.close()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.settings import Settings

    settings = Settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers if args.workers is not None else settings.workers
    if args.demo:
        _, clear = _demo_key()
        # The key rides in the URL fragment: the browser keeps it, it never reaches a server log.
        print(f"Engram chat demo: http://{host}:{port}/#key={clear}", flush=True)
        print(f"API key (tenant 'demo'): {clear}", flush=True)
    # Worker processes build their settings from ENGRAM_*: they must know there are several of
    # them (each then follows the others' writes to a tenant's SQLite file).
    os.environ["ENGRAM_WORKERS"] = str(workers)
    supervisor = None
    if settings.job_process and settings.job_workers > 0:
        import signal

        from api.job_supervisor import WorkerSupervisor

        # uvicorn re-raises the SIGTERM it shut down for, under the handler found before it started:
        # make that an exit that runs the finally below (stopping the worker), not an instant death.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        supervisor = WorkerSupervisor(os.environ, nice=settings.job_process_nice)
        supervisor.start()
    try:
        if workers == 1 and supervisor is not None:
            # The worker starts stopping (its job in hand finishing) while uvicorn drains requests.
            config = uvicorn.Config("api.app:create_app_from_env", factory=True, host=host, port=port, log_level="info")
            _SignallingServer(config, supervisor.signal_stop).run()
        else:
            # A factory import string, so that each worker process builds its own app from ENGRAM_*.
            uvicorn.run("api.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level="info")
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def _SignallingServer(config: Any, on_exit: Any) -> Any:
    """A uvicorn server that also calls ``on_exit()`` when a stop signal arrives."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            on_exit()
            super().handle_exit(sig, frame)

    return Server(config)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _cmd_worker(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from api.job_process import run_worker
    from api.settings import Settings

    if args.nice:
        os.nice(args.nice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    started = threading.Event()  # set once a tenant's job threads run: from then on, stop gracefully

    def on_signal(*_: Any) -> None:
        stop.set()
        if not started.is_set():  # still loading models and indexes: nothing is claimed, just go
            raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    run_worker(Settings(), stop, parent_pid=args.parent_pid, started=started)
    return 0


def _accounts() -> Any:
    from api.settings import Settings
    from memory.accounts import AccountStore, open_accounts_engine

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return AccountStore(open_accounts_engine(settings.control_url()))


def _cmd_keys_create(args: argparse.Namespace) -> int:
    from memory.errors import NotFound

    accounts = _accounts()
    try:
        accounts.get_tenant(args.tenant)
    except NotFound:
        accounts.create_tenant(args.tenant)
        print(f"created tenant {args.tenant}", file=sys.stderr)
    key, clear = accounts.create_key(args.tenant, args.label)
    _print({"id": key.id, "tenant_id": key.tenant_id, "label": key.label, "created_at": key.created_at})
    print("the key below is shown once; store it now", file=sys.stderr)
    print(clear)
    return 0


def _demo_key() -> tuple[Any, str]:
    """A fresh key of tenant ``demo`` (created if missing); keys are stored hashed, so each start
    makes a new one rather than reprinting an old one."""
    from memory.errors import NotFound

    accounts = _accounts()
    try:
        accounts.get_tenant("demo")
    except NotFound:
        accounts.create_tenant("demo")
    return accounts.create_key("demo", "demo page")


def _cmd_keys_list(args: argparse.Namespace) -> int:
    accounts = _accounts()
    accounts.get_tenant(args.tenant)
    for key in accounts.list_keys(args.tenant):
        _print({"id": key.id, "tenant_id": key.tenant_id, "label": key.label, "created_at": key.created_at,
                "revoked_at": key.revoked_at})
    return 0


def _cmd_keys_revoke(args: argparse.Namespace) -> int:
    key = _accounts().revoke_key(args.key_id)
    _print({"id": key.id, "tenant_id": key.tenant_id, "revoked_at": key.revoked_at})
    return 0


def _note_json(note: Any) -> dict[str, Any]:
    return {
        "id": note.id, **note.scope.as_dict(), "content": note.content, "keywords": note.keywords,
        "tags": note.tags, "context": note.context, "metadata": note.metadata, "event_time": note.event_time,
        "created_at": note.created_at, "last_recalled_at": note.last_recalled_at,
        "recall_count": note.recall_count, "strength": round(note.strength, 3), "importance": note.importance,
        "archived": note.archived,
        "links": [{"source": lk.source_id, "target": lk.target_id, "kind": lk.kind, "weight": lk.weight}
                  for lk in note.links],
    }


if __name__ == "__main__":
    sys.exit(main())
