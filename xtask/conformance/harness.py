"""The machinery of the conformance suite: a tiny check runner, a scripted
OpenAI-compatible LLM server, and the agent server under test as a subprocess.

Nothing here knows about individual checks; suite.py holds those.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- runner


class Abort(Exception):
    """Stops a check group: its remaining checks are reported as not reached."""


@dataclass
class Result:
    name: str
    ok: bool
    detail: str = ""


def first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_exception(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Group:
    """One check group: a fixed list of named checks, each reported once.

    Checks the group never reports (because it aborted, or a check raised in
    code outside any `check` block) are reported as failures, so that the
    count of checks does not depend on how far a run got.
    """

    def __init__(self, name: str, checks: list[str], runner: Runner):
        self.name = name
        self.planned = list(checks)
        self.runner = runner
        self.results: dict[str, Result] = {}
        self.cleanups: list[Callable[[], None]] = []

    def qualified(self, check: str) -> str:
        return f"{self.name}.{check}"

    def report(self, check: str, ok: bool, detail: str = "") -> None:
        if check not in self.planned:
            raise RuntimeError(f"check {self.qualified(check)} is not declared in its group")
        if check in self.results:
            raise RuntimeError(f"check {self.qualified(check)} reported twice")
        result = Result(self.qualified(check), ok, detail)
        self.results[check] = result
        self.runner.emit(result)

    @contextmanager
    def check(self, check: str, *, fatal: bool = False) -> Iterator[None]:
        """Run a block as one check: it passes unless it raises.

        With `fatal`, a failure also aborts the group (for steps the later
        checks depend on).
        """
        try:
            yield
        except Abort:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure is a result
            if isinstance(exc, KeyboardInterrupt):
                raise
            detail = describe_exception(exc)
            if self.runner.verbose:
                detail += "\n" + traceback.format_exc()
            self.report(check, False, detail)
            if fatal:
                raise Abort(f"{self.qualified(check)} failed") from exc
        else:
            self.report(check, True)

    def expect(self, check: str, ok: bool, detail: str = "") -> bool:
        """Report a check from a boolean; `detail` explains a failure."""
        self.report(check, bool(ok), "" if ok else detail)
        return bool(ok)

    def timing(self, what: str, seconds: float) -> None:
        """Print a measured duration (a figure for the reader, not a check)."""
        self.runner.note(f"TIME {self.qualified(what)} {seconds:.2f} s")

    def defer(self, cleanup: Callable[[], None]) -> None:
        self.cleanups.append(cleanup)

    def abandon(self, prefix: str, reason: str) -> None:
        """Report the unreported checks whose names start with `prefix` as not reached."""
        for check in self.planned:
            if check.startswith(prefix) and check not in self.results:
                self.report(check, False, f"not reached: {reason}")

    def finish(self, reason: str) -> None:
        self.abandon("", reason)


class Runner:
    def __init__(self, filters: list[str], verbose: bool):
        self.filters = filters
        self.verbose = verbose
        self.results: list[Result] = []
        self.lock = threading.Lock()
        self.current: Group | None = None
        self.skipped: list[str] = []

    def selected(self, group: str) -> bool:
        if not self.filters:
            return True
        return any(group.startswith(f) or f.startswith(group + ".") for f in self.filters)

    def emit(self, result: Result) -> None:
        with self.lock:
            self.results.append(result)
            status = "PASS" if result.ok else "FAIL"
            print(f"{status} {result.name}", flush=True)
            if not result.ok and result.detail:
                for line in result.detail.rstrip().splitlines()[: 40 if self.verbose else 3]:
                    print(f"     {line}", flush=True)

    def note(self, line: str) -> None:
        """A line of the report that is not a result."""
        with self.lock:
            print(line, flush=True)

    def skip(self, name: str, reason: str) -> None:
        """A group that does not apply to this target: said once, counted apart."""
        self.skipped.append(name)
        self.note(f"SKIP {name}: {reason}")

    def run_group(self, name: str, checks: list[str], body: Callable[[Group], None], budget: float) -> None:
        group = Group(name, checks, self)
        self.current = group
        watchdog = threading.Timer(budget, self.give_up, args=(group, budget))
        watchdog.daemon = True
        watchdog.start()
        reason = "the group ended early"
        try:
            body(group)
        except Abort as exc:
            reason = str(exc)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            # Said once here rather than after every check it leaves unreached.
            print(f"ERROR {name}: {first_line(describe_exception(exc), 1000)}", flush=True)
            if self.verbose:
                traceback.print_exc()
            reason = f"group {name} raised (see ERROR above)"
        finally:
            watchdog.cancel()
            for cleanup in reversed(group.cleanups):
                try:
                    cleanup()
                except Exception as exc:  # noqa: BLE001
                    print(f"     (cleanup of {name} failed: {describe_exception(exc)})", flush=True)
            group.finish(reason)
            self.current = None

    def give_up(self, group: Group, budget: float) -> None:
        """The watchdog: a group overran its time budget (a hung call)."""
        group.finish(f"group {group.name} exceeded its {budget:.0f} s budget (hung?)")
        for cleanup in reversed(group.cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001
                pass
        self.summary_and_exit(extra=f"aborted: group {group.name} hung")

    def summary_and_exit(self, extra: str = "") -> None:
        failed = sum(1 for r in self.results if not r.ok)
        if extra:
            print(extra, flush=True)
        skipped = f" ({len(self.skipped)} not applicable: {', '.join(self.skipped)})" if self.skipped else ""
        print(f"{len(self.results)} checks, {failed} failed{skipped}", flush=True)
        sys.stdout.flush()
        os._exit(1 if failed or extra else 0)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; return its value, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def ensure(ok: Any, message: str) -> None:
    """`assert` that survives `python -O` and reads as a check failure."""
    if not ok:
        raise AssertionError(message)


def short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- scripted LLM


@dataclass
class Step:
    """One scripted LLM reply: optional text, tool calls, and a delay before answering."""

    text: str | None = None
    calls: list[tuple[str, dict]] = field(default_factory=list)
    delay: float = 0.0


def say(text: str) -> Step:
    return Step(text=text)


def call(name: str, delay: float = 0.0, text: str | None = None, **arguments: Any) -> Step:
    return Step(text=text, calls=[(name, arguments)], delay=delay)


def terminal(command: str, delay: float = 0.0) -> Step:
    return call("terminal", delay=delay, command=command, security_risk="LOW", summary="run a command")


def finish(message: str = "done") -> Step:
    return call("finish", message=message)


PROMPT_TOKENS = 100
SIDE_REPLY = "Scripted title"  # the answer to requests without tools
COMPLETION_TOKENS = 10


class ScriptedLLM:
    """An OpenAI-compatible chat-completions server answering from a queue.

    Requests that carry tools (the agent's own steps) take the next queued
    step. Requests without tools (titles and other side calls) get a short
    text and take nothing. When the queue is empty the agent gets a plain text
    reply, which ends its turn, and `exhausted` counts it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: list[Step] = []
        self.requests: list[dict] = []  # bodies of the agent's (tool-bearing) requests
        self.authorizations: list[str] = []  # the Authorization header of every request
        self.side_requests: list[dict] = []
        self.exhausted = 0
        self.calls = 0
        self.received = threading.Condition(self.lock)
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    # -- scripting

    def script(self, *steps: Step) -> None:
        with self.lock:
            self.queue.extend(steps)

    def pending(self) -> int:
        with self.lock:
            return len(self.queue)

    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def answered(self) -> int:
        """Every request answered, side calls included (they cost tokens too)."""
        with self.lock:
            return len(self.requests) + len(self.side_requests)

    def wait_requests(self, n: int, timeout: float) -> None:
        """Block until at least `n` agent requests arrived."""
        with self.received:
            ok = self.received.wait_for(lambda: len(self.requests) >= n, timeout)
        if not ok:
            raise TimeoutError(f"the LLM got {len(self.requests)} requests, expected {n} within {timeout:.0f} s")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- answering

    def answer(self, body: dict) -> tuple[dict, float]:
        with self.received:
            if body.get("tools"):
                self.requests.append(body)
                if self.queue:
                    step = self.queue.pop(0)
                else:
                    self.exhausted += 1
                    step = Step(text="(the scripted LLM has no more replies)")
            else:
                self.side_requests.append(body)
                step = Step(text=SIDE_REPLY)
            n = len(self.requests) + len(self.side_requests)
            self.received.notify_all()
            message: dict[str, Any] = {"role": "assistant", "content": step.text}
            if step.calls:
                message["tool_calls"] = []
                for name, arguments in step.calls:
                    self.calls += 1
                    message["tool_calls"].append(
                        {
                            "id": f"call_conformance_{self.calls:03}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)},
                        }
                    )
        reply = {
            "id": f"chatcmpl-conformance-{n}",
            "object": "chat.completion",
            "created": 1767225600 + n,
            "model": "scripted",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if step.calls else "stop"}
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }
        return reply, step.delay

    def start(self, port: int = 0) -> ScriptedLLM:
        """Listen on 127.0.0.1:`port` (0: a free port)."""
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                if not self.path.endswith("/chat/completions"):
                    self.send_json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self.send_json(400, {"error": {"message": "bad json"}})
                    return
                with llm.lock:
                    llm.authorizations.append(self.headers.get("authorization", ""))
                reply, delay = llm.answer(body)
                if delay:
                    time.sleep(delay)
                if body.get("stream"):
                    self.send_stream(reply)
                else:
                    self.send_json(200, reply)

            def send_stream(self, reply: dict) -> None:
                """The same reply as server-sent chunks (the reference streams an agent
                launched from a profile): the whole message in one delta, then the finish
                reason, the usage and `[DONE]`."""
                choice = reply["choices"][0]
                delta = dict(choice["message"])
                if "tool_calls" in delta:
                    delta["tool_calls"] = [dict(call, index=i) for i, call in enumerate(delta["tool_calls"])]
                head = {k: reply[k] for k in ("id", "created", "model")}
                chunks = [
                    {**head, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                    {**head, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
                    {**head, "object": "chat.completion.chunk", "choices": [], "usage": reply["usage"]},
                ]
                payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                data = payload.encode()
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self.send_json(404, {"error": {"message": f"no route {self.path}"}})

            def send_json(self, status: int, data: dict) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = port or free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# --------------------------------------------------------------------------- server under test


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class ServerProcess:
    """The agent server under test, started from OH_CONFORMANCE_SERVER.

    Each instance owns a state directory (conversations, bash events,
    persistence, a workspace) that survives restarts of the process.
    """

    def __init__(self, command: str, state_dir: Path, api_key: str, secret_key: str):
        self.command = command
        self.state_dir = state_dir
        self.api_key = api_key
        self.secret_key = secret_key
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.workspace_dir = state_dir / "workspace"
        # Extra environment of the server process (set by a group before start()).
        self.extra_env: dict[str, str] = {}
        for sub in ("conversations", "bash_events", "persistence", "workspace", "home"):
            (state_dir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / f"server-{self.starts}.log"

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OH_", "FIXTURE_", "SESSION_API_KEY"))
        }
        env.update(
            {
                "HOME": str(self.state_dir / "home"),
                "SESSION_API_KEY": self.api_key,
                "OH_SESSION_API_KEYS_0": self.api_key,
                "OH_SECRET_KEY": self.secret_key,
                "OH_CONVERSATIONS_PATH": str(self.state_dir / "conversations"),
                "OH_BASH_EVENTS_DIR": str(self.state_dir / "bash_events"),
                "OH_PERSISTENCE_DIR": str(self.state_dir / "persistence"),
                "OH_ENABLE_VSCODE": "false",
                "OH_ENABLE_VNC": "false",
                "OH_PRELOAD_TOOLS": "false",
                "NO_COLOR": "1",
                "PYTHON_COLORS": "0",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 90.0) -> None:
        self.starts += 1
        argv = shlex.split(self.command.replace("{port}", str(self.port)))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=self.state_dir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.proc.returncode} during start-up: {self.log_tail(5)}"
                )
            ready = http_status(f"{self.url}/ready")
            if ready == 200 or (ready == 404 and http_status(f"{self.url}/health") == 200):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready within {timeout:.0f} s: {self.log_tail(5)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> float | None:
        """Send `sig` to the server; return how long it took to exit, or None
        if it did not exit within `timeout` (it is then killed). Leftover
        children are killed either way."""
        proc = self.proc
        if proc is None:
            return 0.0
        self.proc = None
        below = descendants(proc.pid)
        started = time.monotonic()
        took: float | None
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
            took = time.monotonic() - started
        except subprocess.TimeoutExpired:
            took = None
            proc.kill()
            proc.wait(10)
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return took

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = text.strip().splitlines()[-lines:]
        return " | ".join(tail) if tail else "(empty log)"
