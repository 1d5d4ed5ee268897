"""The server: owns the database, the append log, the clients and the tick.

The tick, once per event-loop iteration that received commands (``drain``):

1. every queued command, from every connection, runs in arrival order; each reply
   is encoded into its connection's buffer;
2. the change records of the whole batch go to the log in ONE transaction, synced
   under ``fsync = always`` before anything is sent; if the commit fails the batch
   is rolled back in memory and every write in it answers ``-OOM ...``;
3. the batch's changes go through fence evaluation once; events go to subscribers;
4. each connection's replies leave in one write.

Start-up binds the listener first and answers ``-LOADING`` while the log replays
(in slices, so the loop keeps serving), then logs one line with records and seconds.

Limits: one process, one thread for all state; compaction writes its snapshot from a
worker thread.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from geofleetd.commands import (  # noqa: F401  (registers the commands)
    admin,
    fences,
    hooks,
    objects,
    pubsub,
    search,
)
from geofleetd.commands.base import COMMANDS, Ctx, Json, WrongArgs, lookup
from geofleetd.commands.objects import (
    apply_record,
    capture_state,
    delete_object,
    records_from_capture,
)
from geofleetd.config import Config
from geofleetd.errors import GeofleetError, StorageFullError
from geofleetd.fences.engine import FenceEngine
from geofleetd.logs import kv
from geofleetd.persistence.log import AppendLog
from geofleetd.protocol import jsonout
from geofleetd.protocol.resp import OK, OK_BYTES, ErrorReply, encode
from geofleetd.server.connection import ClientConn, ClientState
from geofleetd.server.pubsub import Hub
from geofleetd.store.database import Database

log = logging.getLogger("geofleetd.server")

ALWAYS_ALLOWED = frozenset({"QUIT", "OUTPUT", "INFO", "SERVER", "AUTH"})
SUBSCRIBED_ALLOWED = frozenset(
    {"SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PING", "QUIT"}
)
REPLAY_SLICE = 20000


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db = Database(config.cell_deg)
        self.hub = Hub(self)
        # keys with fences or channels on them: writes there report fence notes
        self.watched: dict[str, int] = {}
        self.fences = FenceEngine(self)
        self.hooks = hooks.HookRegistry()
        self.clients: dict[int, ClientConn] = {}
        self.queue: list[tuple[ClientConn, list[str]]] = []
        self.flush_only: list[ClientConn] = []
        self.scheduled = False
        self.loading = True
        self.read_only = config.read_only
        self.started = time.time()
        self.server_id = uuid.uuid4().hex[:16]
        self.commands_processed = 0
        self.connections_received = 0
        self.log: AppendLog | None = None
        self.listener: asyncio.Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = config.port
        self._compacting = False
        # the pending run of each periodic timer, by name (one each, never a list
        # that grows: the timers re-arm themselves every 50 ms and every second)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._load_task: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        loop = self.loop = asyncio.get_running_loop()
        data_dir = Path(self.config.dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = AppendLog(
            data_dir,
            fsync=self.config.fsync,  # type: ignore[arg-type]
            map_size_max=self.config.map_size_max,
        )
        self.listener = await loop.create_server(
            lambda: ClientConn(self),
            self.config.host,
            self.config.port,
            reuse_address=True,
            backlog=1024,
        )
        sock = self.listener.sockets[0]
        self.port = sock.getsockname()[1]
        log.info(
            kv(
                "listening",
                addr=f"{self.config.host}:{self.port}",
                dir=data_dir,
                fsync=self.config.fsync,
            )
        )
        self._load_task = asyncio.create_task(self._load())

    async def _load(self) -> None:
        assert self.log is not None
        t0 = time.perf_counter()
        db = self.db
        db.journaling = False
        count = 0
        try:
            for rec in self.log.replay():
                if rec[0] in ("set", "del", "drop", "rename", "flush"):
                    apply_record(db, rec)
                elif rec[0] in ("sethook", "delhook"):
                    self.hooks.apply_record(rec)
                else:
                    self.fences.apply_record(rec)
                count += 1
                if count % REPLAY_SLICE == 0:
                    await asyncio.sleep(0)
        except Exception as exc:
            log.error(kv("replay_failed", records=count, cause=exc))
            self.fatal = exc
            self.stopped.set()
            return
        finally:
            db.journaling = True
        db.rebuild_heap()
        self.fences.rebuild_membership()
        self.loading = False
        # The state is long-lived and acyclic: keep the cyclic collector off the
        # hot path (it otherwise costs half of a location update).
        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 50, 1000)
        log.info(
            kv(
                "ready",
                records_replayed=count,
                seconds=round(time.perf_counter() - t0, 3),
                objects=sum(len(c) for c in db.cols.values()),
            )
        )
        self._tick_timers()

    fatal: Exception | None = None

    def _tick_timers(self) -> None:
        assert self.loop is not None
        self._timers["expiry"] = self.loop.call_later(0.05, self._expiry_sweep)
        self._timers["second"] = self.loop.call_later(1.0, self._every_second)

    async def stop(self) -> None:
        log.info(kv("shutting_down", clients=len(self.clients)))
        for t in self._timers.values():
            t.cancel()
        if self.listener is not None:
            self.listener.close()
        for conn in list(self.clients.values()):
            conn.flush()
            conn.close()
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        if self.listener is not None:
            try:
                await asyncio.wait_for(self.listener.wait_closed(), 2)
            except (TimeoutError, asyncio.CancelledError):
                pass
        waited = 0.0
        while (self._compacting or self._syncing) and waited < 120:
            if waited == 0:
                log.info(kv("waiting_for_log_work", compacting=self._compacting))
            await asyncio.sleep(0.05)
            waited += 0.05
        if self.log is not None:
            self.log.close()
            self.log = None
        log.info(kv("stopped"))
        self.stopped.set()

    # -- clients -----------------------------------------------------------------

    def client_connected(self, conn: ClientConn) -> None:
        self.connections_received += 1
        if len(self.clients) >= self.config.max_clients:
            conn.out += b"-ERR max number of clients reached\r\n"
            conn.closing = True
            conn.flush()
            return
        self.clients[conn.state.id] = conn
        if self.config.requirepass:
            conn.state.authed = False

    def client_disconnected(self, conn: ClientConn) -> None:
        self.clients.pop(conn.state.id, None)
        self.hub.forget(conn)
        self.fences.forget(conn)

    def client_list(self) -> list[dict[str, Any]]:
        return [
            {"id": c.state.id, "addr": c.state.addr, "name": c.state.name}
            for c in self.clients.values()
        ]

    def kill_client(self, target: str) -> bool:
        for conn in list(self.clients.values()):
            if str(conn.state.id) == target or conn.state.addr == target:
                conn.close()
                return True
        return False

    # -- the tick ----------------------------------------------------------------

    def enqueue(self, conn: ClientConn, cmds: list[list[str]]) -> None:
        q = self.queue
        for args in cmds:
            q.append((conn, args))
        if not self.scheduled:
            self.scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self.drain)

    def enqueue_flush(self, conn: ClientConn) -> None:
        self.flush_only.append(conn)
        if not self.scheduled:
            self.scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self.drain)

    def drain(self) -> None:
        self.scheduled = False
        batch, self.queue = self.queue, []
        touched: dict[int, ClientConn] = {}
        for conn in self.flush_only:
            touched[id(conn)] = conn
        self.flush_only = []
        ctx = Ctx(self.db, self, ClientState(0, ""), time.time())
        spans: list[tuple[ClientConn, int, int]] = []
        for conn, args in batch:
            touched[id(conn)] = conn
            if conn.closing:
                continue
            nchanges = len(ctx.changes)
            start = len(conn.out)
            try:
                self.execute(ctx, conn, args)
            except Exception as exc:  # encoding a reply failed: answer, go on
                log.exception(kv("reply_failed", command=args[0][:32], cause=exc))
                del conn.out[start:]
                conn.out += b"-ERR internal error\r\n"
            if len(ctx.changes) != nchanges:
                spans.append((conn, start, len(conn.out)))
        self.commands_processed += len(batch)
        if ctx.changes:
            if not self._commit(ctx):
                self._fail_writes(spans)
                ctx.notes.clear()
        else:
            self.db.commit_journal()
        if ctx.notes:
            self._evaluate(ctx)
        for conn in touched.values():
            conn.flush()

    def _commit(self, ctx: Ctx) -> bool:
        assert self.log is not None
        try:
            self.log.append(ctx.changes)
        except StorageFullError as exc:
            log.error(kv("commit_failed", records=len(ctx.changes), cause=exc.message))
            self.db.rollback(self._undo_other)
            self.db.rebuild_heap()
            self._last_commit_error = exc.message
            return False
        except (TypeError, ValueError, OverflowError) as exc:
            # msgpack could not pack a record: nothing of the batch is in the
            # log, so undo it and answer its writes with an error.
            log.error(kv("commit_failed", records=len(ctx.changes), cause=repr(exc)))
            self.db.rollback(self.fences.undo)
            self.db.rebuild_heap()
            self._last_commit_error = f"the change can't be stored: {exc}"
            return False
        except Exception as exc:
            # Any other failure (an lmdb.Error that is not "storage full") leaves
            # the log in an unknown state: acknowledge nothing more, drop every
            # client with its unsent replies, and stop with a non-zero exit code.
            log.critical(
                kv("commit_failed_fatal", records=len(ctx.changes), cause=repr(exc))
            )
            self.db.rollback(self.fences.undo)
            self._last_commit_error = "the server is stopping after a log failure"
            self.fatal = exc
            if self.listener is not None:
                self.listener.close()
            for conn in list(self.clients.values()):
                conn.out.clear()
                conn.closed = True  # flush() sends nothing from now on
                if conn.transport is not None:
                    conn.transport.abort()
            self.stopped.set()
            return False
        self.db.commit_journal()
        self.fences.commit()
        return True

    _last_commit_error = ""

    def _fail_writes(self, spans: list[tuple[ClientConn, int, int]]) -> None:
        err = self._last_commit_error or "storage full"
        by_conn: dict[int, list[tuple[int, int]]] = {}
        conns: dict[int, ClientConn] = {}
        for conn, start, end in spans:
            by_conn.setdefault(id(conn), []).append((start, end))
            conns[id(conn)] = conn
        for key, ranges in by_conn.items():
            conn = conns[key]
            old = bytes(conn.out)
            new = bytearray()
            pos = 0
            for start, end in ranges:
                new += old[pos:start]
                if conn.state.json:
                    line = jsonout.err_reply(err, 0.0).encode(
                        "utf-8", "surrogateescape"
                    )
                    new += b"$%d\r\n" % len(line) + line + b"\r\n"
                else:
                    new += b"-OOM " + err.encode("utf-8", "surrogateescape") + b"\r\n"
                pos = end
            new += old[pos:]
            conn.out = new

    def execute(self, ctx: Ctx, conn: ClientConn, args: list[str]) -> None:
        """Run one command and append its encoded reply to ``conn.out``."""
        state = conn.state
        ctx.client = state
        spec = COMMANDS.get(args[0])
        if (
            spec is None
            or state.json
            or self.loading
            or state.channels
            or state.patterns
            or not state.authed
            or (spec.write and self.read_only)
        ):
            self._execute_checked(ctx, conn, args)
            return
        try:
            reply = spec.handler(ctx, args)
        except WrongArgs as exc:
            self._error(conn, exc.message, exc.code, 0.0)
            return
        except GeofleetError as exc:
            self._error(conn, exc.message, exc.code, 0.0)
            return
        except RecursionError:
            self._error(conn, "nesting too deep", "ERR", 0.0)
            return
        except Exception as exc:  # one traceback, then a generic error
            log.exception(kv("internal_error", command=args[0].lower(), cause=exc))
            self._error(conn, "internal error", "ERR", 0.0)
            return
        if reply is OK:
            conn.out += OK_BYTES
        elif type(reply) is Json:  # the command switched this client to JSON
            text = jsonout.ok_reply(reply, 0.0).encode("utf-8", "surrogateescape")
            conn.out += b"$%d\r\n" % len(text) + text + b"\r\n"
        elif reply is not _NO_REPLY:
            encode(reply, conn.out)

    def _execute_checked(self, ctx: Ctx, conn: ClientConn, args: list[str]) -> None:
        """The general path: gates (loading, auth, pub/sub, read-only), JSON mode."""
        state = conn.state
        name = args[0]
        spec = lookup(name)
        t0 = time.perf_counter() if state.json else 0.0
        try:
            if spec is None:
                reply = self._special(ctx, conn, args)
            else:
                if self.loading and spec.name.upper() not in ALWAYS_ALLOWED:
                    raise GeofleetError("the server is loading its data", "LOADING")
                if (state.channels or state.patterns) and (
                    spec.name.upper() not in SUBSCRIBED_ALLOWED
                ):
                    raise GeofleetError(
                        f"only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT are "
                        f"allowed in this context, got '{spec.name}'"
                    )
                if not state.authed and spec.name.upper() != "AUTH":
                    raise GeofleetError("authentication required", "NOAUTH")
                if spec.write and self.read_only:
                    raise GeofleetError("read only", "READONLY")
                reply = spec.handler(ctx, args)
        except WrongArgs as exc:
            msg = "invalid number of arguments" if state.json else exc.message
            self._error(conn, msg, exc.code, t0)
            return
        except GeofleetError as exc:
            self._error(conn, exc.message, exc.code, t0)
            return
        except RecursionError:
            self._error(conn, "nesting too deep", "ERR", t0)
            return
        except Exception as exc:  # one traceback, then a generic error
            log.exception(kv("internal_error", command=name.lower(), cause=exc))
            self._error(conn, "internal error", "ERR", t0)
            return
        if reply is OK:
            conn.out += OK_BYTES
        elif isinstance(reply, Json):
            text = jsonout.ok_reply(reply, time.perf_counter() - t0).encode(
                "utf-8", "surrogateescape"
            )
            conn.out += b"$%d\r\n" % len(text) + text + b"\r\n"
        elif reply is not _NO_REPLY:
            encode(reply, conn.out)

    def _error(self, conn: ClientConn, message: str, code: str, t0: float) -> None:
        if conn.state.json:
            text = jsonout.err_reply(message, time.perf_counter() - t0).encode(
                "utf-8", "surrogateescape"
            )
            conn.out += b"$%d\r\n" % len(text) + text + b"\r\n"
        else:
            encode(ErrorReply(f"{code} {message}"), conn.out)

    def _special(self, ctx: Ctx, conn: ClientConn, args: list[str]) -> object:
        """Commands that need the connection itself: QUIT, TIMEOUT, AUTH."""
        word = args[0].upper()
        if word == "QUIT":
            conn.closing = True
            return OK if not conn.state.json else Json()
        if word == "TIMEOUT":
            if len(args) < 3:
                raise WrongArgs("timeout")
            try:
                limit = float(args[1])
            except ValueError:
                raise GeofleetError(f"invalid argument '{args[1]}'") from None
            start = len(conn.out)
            t0 = time.perf_counter()
            self.execute(ctx, conn, args[2:])
            if time.perf_counter() - t0 > limit:
                del conn.out[start:]
                raise GeofleetError("timeout")
            return _NO_REPLY
        if word == "AUTH":
            if len(args) != 2:
                raise WrongArgs("auth")
            if not self.config.requirepass or args[1] != self.config.requirepass:
                raise GeofleetError("invalid password")
            conn.state.authed = True
            return OK if not conn.state.json else Json()
        if word in ("SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE"):
            return self.hub.command(conn, args)
        raise GeofleetError(f"unknown command '{args[0]}'")

    # -- timers ------------------------------------------------------------------

    def _expiry_sweep(self) -> None:
        assert self.loop is not None
        self._timers["expiry"] = self.loop.call_later(0.05, self._expiry_sweep)
        now = time.time()
        due = self.db.due(now)
        if not due:
            return
        ctx = Ctx(self.db, self, ClientState(0, "expiry"), now)
        for key, oid in due:
            col = self.db.cols.get(key)
            if col is not None and oid in col:
                delete_object(ctx, key, col, oid, "del")
        self.commit_internal(ctx)

    def commit_internal(self, ctx: Ctx) -> None:
        """Commit changes made by the server itself (expiry), then notify."""
        if ctx.changes and self._commit(ctx) and ctx.notes:
            self._evaluate(ctx)

    def _evaluate(self, ctx: Ctx) -> None:
        try:
            self.fences.evaluate(ctx)
        except Exception as exc:  # a fence bug must not take the server down
            log.exception(
                kv("fence_evaluation_failed", notes=len(ctx.notes), cause=exc)
            )

    _syncing = False

    def _sync_done(self, fut: asyncio.Future[None]) -> None:
        self._syncing = False
        exc = fut.exception()
        if exc is not None:
            log.error(kv("sync_failed", cause=exc))

    def _every_second(self) -> None:
        assert self.loop is not None
        self._timers["second"] = self.loop.call_later(1.0, self._every_second)
        if (
            self.log is not None
            and self.config.fsync == "everysec"
            and not self._syncing
        ):
            # the flush may be many MB: keep it off the event loop
            self._syncing = True
            fut = self.loop.run_in_executor(None, self.log.sync_if_due)
            fut.add_done_callback(self._sync_done)
        self.fences.tick(time.time())
        if not self._compacting and self.log is not None:
            live = sum(len(c) for c in self.db.cols.values())
            if self.log.should_compact(
                max(live, self.config.compact_min_records), self.config.compact_ratio
            ):
                self.request_compaction()

    # -- compaction --------------------------------------------------------------

    def request_compaction(self) -> None:
        if self._compacting or self.log is None or self.loading:
            return
        self._compacting = True
        asyncio.get_running_loop().create_task(self._compact())

    async def _compact(self) -> None:
        assert self.log is not None
        t0 = time.perf_counter()
        try:
            import copy

            captured = capture_state(self.db)
            extra = copy.deepcopy(
                self.fences.state_records() + self.hooks.state_records()
            )
            upto = self.log.last_seq
            records = await asyncio.to_thread(records_from_capture, captured)
            records += extra
            result = await asyncio.to_thread(
                self.log.snapshot_and_compact, records, upto
            )
            log.info(
                kv(
                    "compacted",
                    snapshot_records=len(records),
                    upto_seq=upto,
                    seconds=round(time.perf_counter() - t0, 3),
                    result=result,
                )
            )
        except Exception as exc:
            log.error(kv("compaction_failed", cause=exc))
        finally:
            self._compacting = False

    # -- misc used by commands ---------------------------------------------------

    def set_read_only(self, flag: bool) -> None:
        if flag != self.read_only:
            log.info(kv("read_only", value=flag))
        self.read_only = flag
        self.config.read_only = flag

    def config_changed(self) -> None:
        self.read_only = self.config.read_only

    def log_bytes(self) -> int:
        if self.log is None:
            return 0
        return int(self.log.stats().get("log_bytes", 0))

    def ext_stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loading": self.loading, "pid": os.getpid()}
        if self.log is not None:
            out.update({f"log_{k}": v for k, v in self.log.stats().items()})
        out.update(self.fences.stats())
        return out

    def num_hooks(self) -> int:
        return len(self.hooks.hooks)

    def _undo_other(self, entry: tuple[Any, ...]) -> None:
        self.fences.undo(entry)
        self.hooks.undo(entry)

    def fences_watch(self, key: str) -> bool:
        return key in self.watched

    def key_has_channels(self, key: str) -> bool:
        return self.fences.key_has_channels(key)

    def start_fence(self, ctx: Ctx, query: Any) -> object:
        conn = self.clients.get(ctx.client.id)
        if conn is None:
            raise GeofleetError("no connection")
        self.fences.start_stream(conn, query)
        return Json() if ctx.json else OK


class _NoReply:
    pass


_NO_REPLY: Any = _NoReply()
