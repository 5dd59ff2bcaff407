"""Conformance suite: drive an agent server with the real OpenHands Python SDK
client classes (RemoteWorkspace, RemoteConversation) and check what they see.

Run by `cargo xtask conformance [--server rust|python] [GROUP...]` inside the
reference Python environment (xtask/pyenv.sh). The server under test is the
command line in OH_CONFORMANCE_SERVER, with `{port}` standing for the port; the
suite starts it (once per check group, with a fresh state directory) and stops
it. An LLM is scripted per group (harness.ScriptedLLM): no provider is needed.

The runtime_api group drives a runtime API server (our openhands-sandbox-server)
with the SDK's APIRemoteWorkspace instead: the caller starts that server and
names it in OH_CONFORMANCE_RUNTIME_API_URL and OH_CONFORMANCE_RUNTIME_API_KEY
(OH_CONFORMANCE_RUNTIME_API_IMAGE: the agent-server image of its sandboxes;
OH_CONFORMANCE_RUNTIME_API_UNAVAILABLE: why there is no such server). Against
the Python server (OH_CONFORMANCE_LABEL=python) the group does not apply.
The cloud group drives the same server's Cloud API with the SDK's
OpenHandsCloudWorkspace: OH_CONFORMANCE_CLOUD_API_URL, the user keys
OH_CONFORMANCE_CLOUD_API_KEY and OH_CONFORMANCE_CLOUD_API_KEY_OTHER, and what
the caller put in that user's settings: the LLM key OH_CONFORMANCE_CLOUD_LLM_KEY
(its base URL is the scripted LLM on OH_CONFORMANCE_CLOUD_LLM_PORT) and the
secret CONFORMANCE_TOKEN with the value OH_CONFORMANCE_CLOUD_SECRET.

Usage: python suite.py [-v] [GROUP...]      GROUP: a group name or prefix

Output: one PASS/FAIL line per check, then `N checks, M failed`; the exit
status is 1 if any check failed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

# The client's own logging would interleave with the report; errors the
# checks provoke on purpose (401s, 404s) are logged by the SDK at ERROR.
os.environ.setdefault("LOG_LEVEL", "CRITICAL")
os.environ.setdefault("OPENHANDS_SUPPRESS_BANNER", "1")
# Fail fast if the event socket never becomes ready (the default is 30 s).
os.environ.setdefault("OPENHANDS_REMOTE_WS_READY_TIMEOUT", "20")

import httpx  # noqa: E402

from harness import (  # noqa: E402
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    SIDE_REPLY,
    Abort,
    Group,
    Runner,
    ScriptedLLM,
    ServerProcess,
    call,
    ensure,
    finish,
    http_status,
    say,
    short,
    terminal,
    wait_for,
)

from openhands.sdk import LLM, Agent, Conversation  # noqa: E402
from openhands.sdk.context import AgentContext  # noqa: E402
from openhands.sdk.conversation.exceptions import ConversationRunError  # noqa: E402,F401
from openhands.sdk.conversation.impl.remote_conversation import (  # noqa: E402
    RemoteConversation,
    WebSocketCallbackClient,
)
from openhands.sdk.conversation.state import ConversationExecutionStatus as Status  # noqa: E402
from openhands.sdk.event import (  # noqa: E402
    ActionEvent,
    ConversationStateUpdateEvent,
    MessageEvent,
    ObservationEvent,
    UserRejectObservation,
)
from openhands.sdk.git.models import GitChangeStatus  # noqa: E402
from openhands.sdk.security.confirmation_policy import AlwaysConfirm, NeverConfirm  # noqa: E402
from openhands.sdk.workspace import RemoteWorkspace  # noqa: E402
from openhands.tools.preset.default import get_default_tools  # noqa: E402
from openhands.tools.preset.gpt5 import get_gpt5_agent  # noqa: E402
from openhands.tools.preset.planning import format_plan_structure, get_planning_agent  # noqa: E402
from openhands.sdk.secret import LookupSecret  # noqa: E402
from openhands.workspace import APIRemoteWorkspace, OpenHandsCloudWorkspace  # noqa: E402

SERVER_COMMAND = os.environ.get("OH_CONFORMANCE_SERVER", "")
LABEL = os.environ.get("OH_CONFORMANCE_LABEL", "server")
API_KEY = "conformance-session-key"
# The reference 1.58.2 derives its Fernet key as the *standard* base64 of SHA-256(key); with
# cryptography >= 51 Fernet refuses a key holding "+" or "/", and every conversation create
# answers 500. This key derives one without them (checked below, before any server starts).
SECRET_KEY = "conformance-secret-key-3"
RUN_TIMEOUT = 90.0  # one conversation.run()
INPUT_COST = 0.000003  # per token, so that the server has a cost to add up
OUTPUT_COST = 0.000015

RUNTIME_API_URL = os.environ.get("OH_CONFORMANCE_RUNTIME_API_URL", "")
RUNTIME_API_KEY = os.environ.get("OH_CONFORMANCE_RUNTIME_API_KEY", "")
RUNTIME_API_IMAGE = os.environ.get("OH_CONFORMANCE_RUNTIME_API_IMAGE", "openhands-agent-server:latest")
RUNTIME_API_UNAVAILABLE = os.environ.get("OH_CONFORMANCE_RUNTIME_API_UNAVAILABLE", "")
CLOUD_API_URL = os.environ.get("OH_CONFORMANCE_CLOUD_API_URL", "")
CLOUD_API_KEY = os.environ.get("OH_CONFORMANCE_CLOUD_API_KEY", "")
CLOUD_API_KEY_OTHER = os.environ.get("OH_CONFORMANCE_CLOUD_API_KEY_OTHER", "")
CLOUD_LLM_PORT = int(os.environ.get("OH_CONFORMANCE_CLOUD_LLM_PORT", "0") or 0)
CLOUD_LLM_KEY = os.environ.get("OH_CONFORMANCE_CLOUD_LLM_KEY", "")
CLOUD_SECRET = os.environ.get("OH_CONFORMANCE_CLOUD_SECRET", "")

STATE_ROOT = Path(tempfile.mkdtemp(prefix="state-", dir=os.getcwd()))
GROUPS: list[tuple[str, list[str], float, object, object]] = []


def always() -> str | None:
    return None


def group(name: str, checks: list[str], budget: float = 240.0, applies=always):
    """Register a check group: its name, its checks (in order), a time budget, and
    `applies`, which returns why the group does not apply to this target (or None)."""

    def register(fn):
        GROUPS.append((name, checks, budget, fn, applies))
        return fn

    return register


# --------------------------------------------------------------------------- fixtures


def start_server(g: Group, name: str | None = None, env: dict[str, str] | None = None) -> ServerProcess:
    """A server with its own fresh state directory (and `env` added to its
    environment), stopped when the group ends."""
    state = Path(tempfile.mkdtemp(prefix=f"{name or g.name}-", dir=STATE_ROOT))
    server = ServerProcess(SERVER_COMMAND, state, API_KEY, SECRET_KEY)
    server.extra_env = dict(env or {})
    g.defer(lambda: server.stop(signal.SIGKILL, timeout=10))
    g.defer(lambda: show_log(g, server))
    server.start()
    return server


def show_log(g: Group, server: ServerProcess) -> None:
    """With -v, the end of the server's log when its group had failures."""
    if g.runner.verbose and any(not r.ok for r in g.results.values()):
        print(f"     --- {server.log_path.name} of {server.state_dir.name}, last lines:", flush=True)
        for line in server.log_tail(30).split(" | "):
            print(f"     | {line}", flush=True)


def start_llm(g: Group) -> ScriptedLLM:
    llm = ScriptedLLM().start()
    g.defer(llm.stop)
    return llm


def workspace(server: ServerProcess, api_key: str | None = API_KEY) -> RemoteWorkspace:
    return RemoteWorkspace(host=server.url, api_key=api_key, working_dir=str(server.workspace_dir))


def rest(server: ServerProcess, api_key: str | None = API_KEY) -> httpx.Client:
    """A plain HTTP client, for looking at what the SDK client does not show."""
    headers = {"X-Session-API-Key": api_key} if api_key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def make_agent(llm: ScriptedLLM) -> Agent:
    return Agent(
        llm=LLM(
            model="openai/scripted",
            base_url=llm.base_url,
            api_key="test-key",
            usage_id="agent",
            num_retries=0,
            input_cost_per_token=INPUT_COST,
            output_cost_per_token=OUTPUT_COST,
        ),
        tools=get_default_tools(enable_browser=False),
    )


class Session:
    """A RemoteConversation plus the events its callback received."""

    def __init__(
        self,
        g: Group,
        server: ServerProcess | None,
        llm: ScriptedLLM,
        conversation_id=None,
        ws: RemoteWorkspace | None = None,
        agent: Agent | None = None,
        **kwargs,
    ):
        self.events: list = []
        self.lock = threading.Lock()
        self.workspace = ws if ws is not None else workspace(server)
        self.conversation = Conversation(
            agent=agent if agent is not None else make_agent(llm),
            workspace=self.workspace,
            conversation_id=conversation_id,
            callbacks=[self.on_event],
            visualizer=None,
            **kwargs,
        )
        ensure(isinstance(self.conversation, RemoteConversation), f"got {type(self.conversation).__name__}")
        g.defer(self.close)

    def on_event(self, event) -> None:
        with self.lock:
            self.events.append(event)

    def received(self, kind: type) -> list:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]

    def run(self) -> None:
        self.conversation.run(timeout=RUN_TIMEOUT)

    def say_and_run(self, text: str) -> None:
        self.conversation.send_message(text)
        self.run()

    @property
    def status(self) -> Status:
        return self.conversation.state.execution_status

    def history(self) -> list:
        """The conversation's events in the client's list, minus state updates
        (the server stores some of those and streams others)."""
        return [e for e in self.conversation.state.events if not isinstance(e, ConversationStateUpdateEvent)]

    def close(self) -> None:
        self.conversation.close()


def rest_events(server: ServerProcess, conversation_id) -> list[dict]:
    """Every event of a conversation through `events/search`, following pages."""
    items: list[dict] = []
    page_id = None
    with rest(server) as client:
        while True:
            params: dict = {"limit": 100}
            if page_id:
                params["page_id"] = page_id
            resp = client.get(f"/api/conversations/{conversation_id}/events/search", params=params)
            resp.raise_for_status()
            data = resp.json()
            items.extend(data["items"])
            page_id = data.get("next_page_id")
            if not page_id:
                return items


def rest_info(server: ServerProcess, conversation_id) -> dict:
    with rest(server) as client:
        resp = client.get(f"/api/conversations/{conversation_id}")
        resp.raise_for_status()
        return resp.json()


def observation_text(event) -> str:
    """The text an observation event shows the LLM."""
    return "".join(getattr(c, "text", "") for c in event.observation.to_llm_content)


def tool_messages(request: dict) -> str:
    """The text of all tool-result messages of one chat-completions request."""
    parts = []
    for message in request.get("messages", []):
        if message.get("role") != "tool":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(block.get("text", "") for block in content if isinstance(block, dict))
    return "\n".join(parts)


def user_texts(request: dict) -> str:
    parts = []
    for message in request.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(block.get("text", "") for block in content if isinstance(block, dict))
    return "\n".join(parts)


# --------------------------------------------------------------------------- 1. workspace commands


@group(
    "workspace",
    [
        "alive",
        "server_info",
        "exit_code_0",
        "exit_code_3",
        "stdout_and_stderr_apart",
        "cwd_honoured",
        "session_key_not_leaked",
        "timeout_reported",
        "timeout_kills_command",
        "unicode_output",
        "large_output_2mb",
        "large_output_in_order",
        "start_and_stop_command",
        "stop_finished_or_unknown_is_noop",
    ],
)
def workspace_commands(g: Group) -> None:
    server = start_server(g)
    ws = workspace(server)
    wd = server.workspace_dir

    g.expect("alive", ws.alive, "RemoteWorkspace.alive is False")
    with g.check("server_info"):
        info = ws.get_server_info()
        ensure(isinstance(info, dict) and "version" in info, f"no version in {short(info)}")

    with g.check("exit_code_0"):
        r = ws.execute_command("echo hello")
        ensure(r.exit_code == 0, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")
        ensure(r.stdout == "hello\n", f"stdout {r.stdout!r}")
        ensure(not r.timeout_occurred, "timeout_occurred")

    with g.check("exit_code_3"):
        r = ws.execute_command("exit 3")
        ensure(r.exit_code == 3, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")

    with g.check("stdout_and_stderr_apart"):
        r = ws.execute_command("echo to-out; echo to-err >&2")
        ensure(r.stdout == "to-out\n", f"stdout {r.stdout!r}")
        ensure(r.stderr == "to-err\n", f"stderr {r.stderr!r}")

    with g.check("cwd_honoured"):
        sub = wd / "sub dir"
        sub.mkdir(parents=True, exist_ok=True)
        r = ws.execute_command("pwd", cwd=str(sub))
        ensure(r.exit_code == 0 and r.stdout.strip() == str(sub), f"pwd printed {r.stdout!r} ({r.exit_code})")

    with g.check("session_key_not_leaked"):
        r = ws.execute_command('echo "[${SESSION_API_KEY-unset}]"')
        ensure(r.stdout == "[unset]\n", f"the command saw SESSION_API_KEY: {r.stdout!r}")

    with g.check("timeout_reported"):
        started = time.monotonic()
        r = ws.execute_command(f"touch '{wd}/timeout-started'; sleep 5", timeout=1)
        took = time.monotonic() - started
        ensure("Remote execution error" not in r.stderr, f"stderr {short(r.stderr)}")
        ensure((wd / "timeout-started").exists(), "the command never started")
        ensure(r.exit_code == -1, f"exit_code {r.exit_code}")
        ensure(took < 4.5, f"execute_command took {took:.1f} s with timeout 1")
        # The client says timeout_occurred when its own deadline passed; when
        # the server's kill came first it reports exit -1 without the text.
        ensure(r.timeout_occurred == ("timed out" in r.stderr), f"timeout_occurred {r.timeout_occurred}, stderr {r.stderr!r}")

    with g.check("timeout_kills_command"):
        marker = wd / "timeout-marker"
        ws.execute_command(f"touch '{wd}/kill-started'; sleep 2; touch '{marker}'", timeout=1)
        ensure((wd / "kill-started").exists(), "the command never started")
        time.sleep(3)
        ensure(not marker.exists(), "the command kept running after its timeout")

    with g.check("unicode_output"):
        text = "héllo wörld ✓ 日本語 🎉"
        r = ws.execute_command(f"printf '%s\\n' '{text}'")
        ensure(r.stdout == text + "\n", f"stdout {r.stdout!r}")

    with g.check("large_output_2mb"):
        r = ws.execute_command("head -c 2000000 /dev/zero | tr '\\0' a", timeout=60)
        ensure(r.exit_code == 0, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")
        ensure(len(r.stdout) == 2_000_000, f"got {len(r.stdout)} characters")
        ensure(r.stdout.count("a") == 2_000_000, "unexpected characters")

    with g.check("large_output_in_order"):
        r = ws.execute_command("seq 1 300000", timeout=60)
        expected = "".join(f"{i}\n" for i in range(1, 300001))
        ensure(r.exit_code == 0, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")
        ensure(len(r.stdout) == len(expected), f"got {len(r.stdout)} characters, expected {len(expected)}")
        ensure(r.stdout == expected, "output reordered or duplicated")

    with g.check("start_and_stop_command"):
        command_id = ws.start_command("sleep 30", timeout=60)
        time.sleep(0.5)
        out = ws.get_command_output(command_id)
        ensure(out is None or out.get("exit_code") is None, f"finished early: {short(out)}")
        ws.stop_command(command_id)
        out = wait_for(
            lambda: (o := ws.get_command_output(command_id)) and o.get("exit_code") is not None and o,
            10,
            0.2,
            "an exit code after stop_command",
        )
        ensure(out["command_id"] == command_id or uuid.UUID(out["command_id"]) == uuid.UUID(command_id), short(out))

    with g.check("stop_finished_or_unknown_is_noop"):
        command_id = ws.start_command("true")
        wait_for(
            lambda: (o := ws.get_command_output(command_id)) and o.get("exit_code") is not None,
            10,
            0.2,
            "the command to finish",
        )
        ws.stop_command(command_id)
        ws.stop_command(uuid.uuid4().hex)


# --------------------------------------------------------------------------- 2. files


@group(
    "files",
    [
        "upload_text",
        "download_text",
        "upload_reports_size",
        "binary_round_trip",
        "upload_raw_bytes",
        "large_round_trip_20mib",
        "upload_creates_parents",
        "upload_overwrites",
        "unicode_file_name",
        "download_missing_fails",
        "download_directory_fails",
        "upload_relative_path_fails",
    ],
)
def files(g: Group) -> None:
    server = start_server(g)
    ws = workspace(server)
    wd = server.workspace_dir
    local = Path(tempfile.mkdtemp(prefix="local-", dir=STATE_ROOT))
    text = "first line\nzweite Zeile ✓\n"

    with g.check("upload_text"):
        src = local / "text.txt"
        src.write_text(text)
        r = ws.file_upload(src, wd / "up" / "text.txt")
        ensure(r.success, f"upload failed: {r.error}")
        c = ws.execute_command(f"cat '{wd}/up/text.txt'")
        ensure(c.stdout == text, f"server-side content {c.stdout!r}")

    with g.check("download_text"):
        r = ws.file_download(wd / "up" / "text.txt", local / "text.back")
        ensure(r.success, f"download failed: {r.error}")
        ensure((local / "text.back").read_text() == text, "content differs")
        ensure(r.file_size == len(text.encode()), f"file_size {r.file_size}")

    with g.check("upload_reports_size"):
        src = local / "sized.txt"
        src.write_bytes(b"x" * 1234)
        r = ws.file_upload(src, wd / "sized.txt")
        ensure(r.success and r.file_size == 1234, f"success {r.success}, file_size {r.file_size}")

    with g.check("binary_round_trip"):
        data = bytes(range(256)) * 8
        src = local / "all-bytes.bin"
        src.write_bytes(data)
        ensure(ws.file_upload(src, wd / "all-bytes.bin").success, "upload failed")
        c = ws.execute_command(f"sha256sum '{wd}/all-bytes.bin'")
        ensure(c.stdout.split()[0] == hashlib.sha256(data).hexdigest(), f"server-side sha256 {c.stdout!r}")
        r = ws.file_download(wd / "all-bytes.bin", local / "all-bytes.back")
        ensure(r.success and (local / "all-bytes.back").read_bytes() == data, f"round trip differs ({r.error})")

    with g.check("upload_raw_bytes"):
        r = ws.file_upload(b"\x00raw\xffbytes", wd / "raw.bin")
        ensure(r.success, f"upload failed: {r.error}")
        ensure((wd / "raw.bin").read_bytes() == b"\x00raw\xffbytes", "content differs")

    with g.check("large_round_trip_20mib"):
        data = os.urandom(20 * 1024 * 1024)
        src = local / "large.bin"
        src.write_bytes(data)
        r = ws.file_upload(src, wd / "large.bin")
        ensure(r.success, f"upload failed: {r.error}")
        ensure(hashlib.sha256((wd / "large.bin").read_bytes()).digest() == hashlib.sha256(data).digest(), "stored content differs")
        r = ws.file_download(wd / "large.bin", local / "large.back")
        ensure(r.success, f"download failed: {r.error}")
        ensure(r.file_size == len(data), f"file_size {r.file_size}")
        ensure((local / "large.back").read_bytes() == data, "downloaded content differs")

    with g.check("upload_creates_parents"):
        r = ws.file_upload(b"deep", wd / "a" / "b" / "c" / "deep.txt")
        ensure(r.success, f"upload failed: {r.error}")
        ensure((wd / "a" / "b" / "c" / "deep.txt").read_bytes() == b"deep", "file missing")

    with g.check("upload_overwrites"):
        ensure(ws.file_upload(b"old content, longer", wd / "over.txt").success, "first upload failed")
        ensure(ws.file_upload(b"new", wd / "over.txt").success, "second upload failed")
        ensure((wd / "over.txt").read_bytes() == b"new", f"content {(wd / 'over.txt').read_bytes()!r}")

    with g.check("unicode_file_name"):
        name = "ünïcødé 文件.txt"
        ensure(ws.file_upload(b"named", wd / name).success, "upload failed")
        r = ws.file_download(wd / name, local / "named.back")
        ensure(r.success and (local / "named.back").read_bytes() == b"named", f"round trip failed: {r.error}")

    with g.check("download_missing_fails"):
        # The control: downloads work (a missing route would fail alike).
        (wd / "present.txt").write_text("present")
        ensure(ws.file_download(wd / "present.txt", local / "present.back").success, "downloading a present file failed")
        r = ws.file_download(wd / "no-such-file.txt", local / "missing.back")
        ensure(not r.success, "download of a missing file succeeded")
        ensure(r.error and "404" in r.error, f"error {r.error!r}")
        ensure(not (local / "missing.back").exists(), "a local file was created")

    with g.check("download_directory_fails"):
        r = ws.file_download(wd, local / "dir.back")
        ensure(not r.success, "download of a directory succeeded")
        ensure(r.error and "400" in r.error, f"error {r.error!r}")

    with g.check("upload_relative_path_fails"):
        r = ws.file_upload(b"x", "relative/path.txt")
        ensure(not r.success, "upload to a relative path succeeded")
        ensure(r.error and "400" in r.error, f"error {r.error!r}")


# --------------------------------------------------------------------------- 3. git


@group(
    "git",
    [
        "setup_repo",
        "changes_statuses",
        "changes_relative_path",
        "diff_modified_file",
        "diff_new_file",
        "diff_unchanged_file",
        "diff_deleted_file",
        "changes_not_a_repo",
    ],
)
def git(g: Group) -> None:
    server = start_server(g)
    ws = workspace(server)
    repo = server.workspace_dir / "repo"

    with g.check("setup_repo", fatal=True):
        script = " && ".join(
            [
                f"mkdir -p '{repo}'",
                f"cd '{repo}'",
                "git init -q",
                "git config user.email conformance@example.com",
                "git config user.name Conformance",
                "printf 'one\\n' > a.txt",
                "printf 'keep\\n' > b.txt",
                "printf 'same\\n' > d.txt",
                "git add .",
                "git commit -qm init",
                "printf 'one\\ntwo\\n' > a.txt",
                "rm b.txt",
                "printf 'new\\n' > c.txt",
            ]
        )
        r = ws.execute_command(script)
        ensure(r.exit_code == 0, f"exit_code {r.exit_code}: {short(r.stderr)}")

    expected = {"a.txt": GitChangeStatus.UPDATED, "b.txt": GitChangeStatus.DELETED, "c.txt": GitChangeStatus.ADDED}

    def as_map(changes) -> dict:
        return {Path(c.path).name if Path(c.path).is_absolute() else str(c.path): c.status for c in changes}

    with g.check("changes_statuses"):
        got = as_map(ws.git_changes(str(repo)))
        ensure(got == expected, f"got {got}")

    with g.check("changes_relative_path"):
        got = as_map(ws.git_changes("repo"))
        ensure(got == expected, f"got {got}")

    # The reference joins the lines of each side: no trailing newline.
    with g.check("diff_modified_file"):
        d = ws.git_diff(str(repo / "a.txt"))
        ensure(d.original == "one" and d.modified == "one\ntwo", f"got {d!r}")

    with g.check("diff_new_file"):
        d = ws.git_diff("repo/c.txt")
        ensure(d.original == "" and d.modified == "new", f"got {d!r}")

    with g.check("diff_unchanged_file"):
        d = ws.git_diff("repo/d.txt")
        ensure(d.original == "same" and d.modified == "same", f"got {d!r}")

    # 1.58.2: a tracked file deleted from disk diffs as its base text against "".
    with g.check("diff_deleted_file"):
        d = ws.git_diff(str(repo / "b.txt"))
        ensure(d.original == "keep" and d.modified == "", f"got {d!r}")

    with g.check("changes_not_a_repo"):
        plain = server.workspace_dir / "plain"
        plain.mkdir(exist_ok=True)
        got = ws.git_changes(str(plain))
        ensure(got == [], f"got {got}")


# --------------------------------------------------------------------------- 4. conversations


@group(
    "conversation",
    [
        "create",
        "first_run_finishes",
        "callback_events",
        "terminal_ran",
        "user_message_reached_llm",
        "auto_title",
        "second_turn",
        "agent_text_message",
        "status_finished",
        "rest_status_finished",
        "events_match_rest",
        "events_ordered",
        "stats_tokens",
        "stats_cost",
        "set_title",
        "attach_by_id",
        "close_deletes",
    ],
)
def conversation(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    with g.check("create", fatal=True):
        s = Session(g, server, llm)
        ensure(s.status == Status.IDLE, f"new conversation status {s.status}")

    llm.script(terminal("echo conformance-$((6*7))"), finish("first task done"))
    with g.check("first_run_finishes", fatal=True):
        s.say_and_run("Please compute six times seven in the shell.")
        ensure(s.status == Status.FINISHED, f"status {s.status}")

    with g.check("callback_events"):
        actions = s.received(ActionEvent)
        observations = s.received(ObservationEvent)
        messages = s.received(MessageEvent)
        ensure([a.tool_name for a in actions] == ["terminal", "finish"], f"actions {[a.tool_name for a in actions]}")
        ensure([o.tool_name for o in observations] == ["terminal", "finish"], f"observations {[o.tool_name for o in observations]}")
        ensure(any(m.source == "user" for m in messages), "no user MessageEvent")
        ensure(observations[0].action_id == actions[0].id, "observation does not answer the action")

    with g.check("terminal_ran"):
        observation = s.received(ObservationEvent)[0]
        ensure("conformance-42" in observation_text(observation), f"observation {short(observation_text(observation))}")
        ensure(len(llm.requests) >= 2, f"{len(llm.requests)} LLM requests")
        ensure("conformance-42" in tool_messages(llm.requests[1]), "the second LLM request lacks the command output")

    with g.check("user_message_reached_llm"):
        ensure("six times seven" in user_texts(llm.requests[0]), "the first LLM request lacks the user message")

    with g.check("auto_title"):
        # The reference asks the agent's LLM for a title after the first message.
        wait_for(lambda: rest_info(server, s.conversation.id).get("title") == SIDE_REPLY, 15, 0.5, "the generated title")
        ensure(llm.side_requests and "six times seven" in user_texts(llm.side_requests[0]), "title request lacks the message")

    llm.script(say("Second answer from the agent."))
    with g.check("second_turn", fatal=True):
        before = llm.request_count()
        s.say_and_run("And now just say something.")
        ensure(llm.request_count() == before + 1, f"{llm.request_count() - before} LLM requests in turn 2")
        ensure("conformance-42" in tool_messages(llm.requests[-1]), "turn 2 lost the history of turn 1")

    with g.check("agent_text_message"):
        texts = ["".join(getattr(c, "text", "") for c in m.llm_message.content) for m in s.received(MessageEvent) if m.source == "agent"]
        ensure("Second answer from the agent." in texts, f"agent messages {texts}")

    g.expect("status_finished", s.status == Status.FINISHED, f"status {s.status}")
    with g.check("rest_status_finished"):
        info = rest_info(server, s.conversation.id)
        ensure(info.get("execution_status") == "finished", f"REST execution_status {info.get('execution_status')}")

    with g.check("events_match_rest"):
        stored = rest_events(server, s.conversation.id)
        client_ids = [e.id for e in s.history()]
        rest_ids = [e["id"] for e in stored if e["kind"] != "ConversationStateUpdateEvent"]
        ensure(client_ids == rest_ids, f"client {len(client_ids)} events, REST {len(rest_ids)} (state updates left out)")
        cached = {e.id for e in s.conversation.state.events}
        ensure(all(e["id"] in cached for e in stored), "some stored events are not in the client's list")
        seen = {e.id for e in s.events}
        ensure(all(e["id"] in seen for e in stored), "some stored events never reached the callback")

    with g.check("events_ordered"):
        stored = [e for e in rest_events(server, s.conversation.id) if e["kind"] != "ConversationStateUpdateEvent"]
        ensure(stored and stored[0]["kind"] == "SystemPromptEvent", f"first event {stored[0]['kind'] if stored else None}")
        stamps = [e["timestamp"] for e in stored]
        ensure(stamps == sorted(stamps), "events/search is not in timestamp order")

    with g.check("stats_tokens"):
        metrics = s.conversation.conversation_stats.get_combined_metrics()
        usage = metrics.accumulated_token_usage
        calls = llm.answered()
        ensure(usage is not None, "no accumulated_token_usage")
        ensure(usage.prompt_tokens == PROMPT_TOKENS * calls, f"prompt_tokens {usage.prompt_tokens}, expected {PROMPT_TOKENS * calls}")
        ensure(usage.completion_tokens == COMPLETION_TOKENS * calls, f"completion_tokens {usage.completion_tokens}")
        ensure("agent" in s.conversation.conversation_stats.usage_to_metrics, "no stats for usage_id agent")

    with g.check("stats_cost"):
        metrics = s.conversation.conversation_stats.get_combined_metrics()
        calls = llm.answered()
        expected = calls * (PROMPT_TOKENS * INPUT_COST + COMPLETION_TOKENS * OUTPUT_COST)
        ensure(abs(metrics.accumulated_cost - expected) < 1e-9, f"accumulated_cost {metrics.accumulated_cost}, expected {expected}")

    with g.check("set_title"):
        s.conversation.set_title("Conformance title")
        ensure(rest_info(server, s.conversation.id).get("title") == "Conformance title", "title not stored")

    with g.check("attach_by_id"):
        ids = [e.id for e in s.history()]
        other = Session(g, server, llm, conversation_id=s.conversation.id)
        ensure(other.conversation.id == s.conversation.id, "attached to another conversation")
        ensure([e.id for e in other.history()] == ids, "the attached client sees other events")
        ensure(other.status == Status.FINISHED, f"status {other.status}")

    with g.check("close_deletes"):
        # Conversation(...) defaults to delete_on_close=True.
        other.close()
        with rest(server) as client:
            status = client.get(f"/api/conversations/{s.conversation.id}").status_code
        ensure(status == 404, f"GET after close: {status}")


# --------------------------------------------------------------------------- 4b. tool presets

# `cargo xtask conformance` copies the captured requests next to the suite; run from the
# repository, they are read where they live.
_HERE = Path(__file__).resolve().parent
GOLDEN_DIR = next(
    (
        d
        for d in (_HERE / "llm_requests", _HERE.parent.parent / "crates" / "oh-agent" / "tests" / "fixtures" / "llm_requests")
        if d.is_dir()
    ),
    _HERE / "llm_requests",
)


def golden_tools(preset: str) -> list:
    """The `tools` array the reference sent for `preset` (descriptions scrubbed), as
    captured by xtask/fixtures/capture_llm.py."""
    import json

    if preset == "default":
        doc = json.loads((GOLDEN_DIR / "openai_chat.json").read_text())
        return doc["requests"][0]["body"]["tools"]
    doc = json.loads((GOLDEN_DIR / f"tools_{preset}.json").read_text())
    return doc["tools"]


def scrub_descriptions(value):
    if isinstance(value, dict):
        return {k: ("<description>" if k == "description" and isinstance(v, str) else scrub_descriptions(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_descriptions(v) for v in value]
    return value


def preset_llm(llm: ScriptedLLM) -> LLM:
    return LLM(
        model="openai/scripted",
        base_url=llm.base_url,
        api_key="test-key",
        usage_id="agent",
        num_retries=0,
        input_cost_per_token=INPUT_COST,
        output_cost_per_token=OUTPUT_COST,
    )


def check_tools_equal_golden(llm: ScriptedLLM, preset: str) -> None:
    ensure(llm.requests, "no LLM request with tools")
    got = scrub_descriptions(llm.requests[0]["tools"])
    want = golden_tools(preset)
    got_names = [t["function"]["name"] for t in got]
    want_names = [t["function"]["name"] for t in want]
    ensure(got_names == want_names, f"tool names {got_names}, expected {want_names}")
    for g_tool, w_tool in zip(got, want):
        ensure(g_tool == w_tool, f"schema of {g_tool['function']['name']} differs: {short(g_tool, 600)}")


def observations_by_tool(s: Session) -> list[tuple[str, object]]:
    return [(o.tool_name, o.observation) for o in s.received(ObservationEvent)]


@group(
    "preset_gemini",
    [
        "create",
        "runs_to_finished",
        "tools_equal_golden",
        "action_kinds",
        "write_file_created",
        "read_file_window",
        "edit_count_mismatch_refused",
        "edit_replaced_all",
        "edit_creates_file",
        "list_directory_entries",
        "read_file_missing_is_error",
        "errors_reach_llm",
        "system_prompt_tool_records",
        "invalid_arguments_agent_error",
    ],
)
def preset_gemini(g: Group) -> None:
    from openhands.tools.gemini import (
        EditObservation,
        ListDirectoryObservation,
        ReadFileObservation,
        WriteFileObservation,
    )
    from openhands.tools.preset.gemini import get_gemini_agent

    server = start_server(g)
    llm = start_llm(g)
    wd = server.workspace_dir
    with g.check("create", fatal=True):
        s = Session(g, server, llm, agent=get_gemini_agent(preset_llm(llm), cli_mode=True))
        ensure(s.status == Status.IDLE, f"new conversation status {s.status}")

    llm.script(
        call("write_file", file_path="notes/a.txt", content="alpha\nbeta\nbeta\n", security_risk="LOW", summary="write a"),
        call("read_file", file_path="notes/a.txt", offset=1, limit=1),
        call("edit", file_path="notes/a.txt", old_string="beta", new_string="gamma", security_risk="LOW"),
        call("edit", file_path="notes/a.txt", old_string="beta", new_string="gamma", expected_replacements=2, security_risk="LOW"),
        call("edit", file_path="made/new.txt", old_string="", new_string="fresh", security_risk="LOW"),
        call("list_directory", dir_path=".", recursive=True),
        call("read_file", file_path="missing.txt"),
        call("read_file", file_path="notes/a.txt", limit=0),
        finish("gemini tools used"),
    )
    with g.check("runs_to_finished", fatal=True):
        s.say_and_run("Write, read, edit and list files.")
        ensure(s.status == Status.FINISHED, f"status {s.status}")

    with g.check("tools_equal_golden"):
        check_tools_equal_golden(llm, "gemini")

    obs = observations_by_tool(s)
    with g.check("action_kinds"):
        # The call with invalid arguments is recorded as an ActionEvent without an action.
        kinds = [type(a.action).__name__ for a in s.received(ActionEvent)]
        ensure(
            kinds == ["WriteFileAction", "ReadFileAction", "EditAction", "EditAction", "EditAction", "ListDirectoryAction", "ReadFileAction", "NoneType", "FinishAction"],
            f"actions {kinds}",
        )
        ensure([n for n, _ in obs][:7] == ["write_file", "read_file", "edit", "edit", "edit", "list_directory", "read_file"], f"observations {[n for n, _ in obs]}")

    file = wd / "notes" / "a.txt"
    with g.check("write_file_created"):
        o = obs[0][1]
        ensure(isinstance(o, WriteFileObservation), f"got {type(o).__name__}")
        ensure(not o.is_error and o.is_new_file, f"is_error {o.is_error}, is_new_file {o.is_new_file}")
        ensure(o.file_path == str(file) and o.new_content == "alpha\nbeta\nbeta\n", f"file_path {o.file_path}")
        ensure(o.text == f"Created file: {file}", f"text {o.text!r}")

    with g.check("read_file_window"):
        o = obs[1][1]
        ensure(isinstance(o, ReadFileObservation), f"got {type(o).__name__}")
        ensure(o.file_content == "     2  beta\n", f"file_content {o.file_content!r}")
        ensure(o.is_truncated and tuple(o.lines_shown) == (2, 2) and o.total_lines == 3, f"{o.is_truncated} {o.lines_shown} {o.total_lines}")
        ensure(
            o.text == f"Read file: {file} (showing lines 2-2 of 3) To read more, use: read_file(file_path='notes/a.txt', offset=2, limit=1)\n\n     2  beta\n",
            f"text {o.text!r}",
        )

    real = Path(os.path.realpath(file))
    with g.check("edit_count_mismatch_refused"):
        o = obs[2][1]
        ensure(isinstance(o, EditObservation) and o.is_error, f"got {type(o).__name__}, is_error {getattr(o, 'is_error', None)}")
        ensure(o.text == f"Error: Expected 1 occurrence but found 2 in {real}.", f"text {o.text!r}")

    with g.check("edit_replaced_all"):
        o = obs[3][1]
        ensure(not o.is_error and o.replacements_made == 2, f"is_error {o.is_error}, replacements {o.replacements_made}")
        ensure(o.old_content == "alpha\nbeta\nbeta\n" and o.new_content == "alpha\ngamma\ngamma\n", f"new_content {o.new_content!r}")
        ensure(file.read_text() == "alpha\ngamma\ngamma\n", f"file {file.read_text()!r}")

    with g.check("edit_creates_file"):
        o = obs[4][1]
        made = Path(os.path.realpath(wd)) / "made" / "new.txt"
        ensure(not o.is_error and o.is_new_file and o.replacements_made == 1, f"{o.text!r}")
        ensure(o.text == f"Created new file: {made}", f"text {o.text!r}")
        ensure((wd / "made" / "new.txt").read_text() == "fresh", "file content")

    with g.check("list_directory_entries"):
        o = obs[5][1]
        ensure(isinstance(o, ListDirectoryObservation), f"got {type(o).__name__}")
        names = [e.name for e in o.entries]
        ensure({"notes", "made", "a.txt", "new.txt"} <= set(names), f"entries {names}")
        depths = {len(Path(e.path).relative_to(wd).parts) for e in o.entries}
        ensure(depths <= {1, 2}, f"entry depths {sorted(depths)} (two levels at most)")
        top = sorted(p.name for p in wd.iterdir())
        ensure(sorted(e.name for e in o.entries if Path(e.path).parent == wd) == top, f"top level {names}, expected {top}")
        n = len(o.entries)
        ensure(o.total_count == n and o.text == f"Listed directory: {wd} ({n} entries)", f"text {o.text!r}")
        a = next(e for e in o.entries if e.name == "a.txt")
        ensure(a.size == len("alpha\ngamma\ngamma\n") and not a.is_directory and a.path == str(file), f"entry {a!r}")

    with g.check("read_file_missing_is_error"):
        o = obs[6][1]
        ensure(o.is_error and o.text == f"Error: File not found: {wd / 'missing.txt'}", f"text {o.text!r}")

    with g.check("errors_reach_llm"):
        ensure(len(llm.requests) >= 4, f"{len(llm.requests)} LLM requests")
        seen = tool_messages(llm.requests[3])
        ensure("[An error occurred during execution.]" in seen and "Expected 1 occurrence but found 2" in seen, f"tool messages {short(seen, 400)}")

    with g.check("invalid_arguments_agent_error"):
        from openhands.sdk.event import AgentErrorEvent

        errors = s.received(AgentErrorEvent)
        ensure(len(errors) == 1 and errors[0].tool_name == "read_file", f"agent errors {[short(e.error) for e in errors]}")
        ensure("limit" in errors[0].error, f"error {short(errors[0].error, 400)}")
        ensure(tool_messages(llm.requests[-1]).count("limit") >= 1, "the LLM did not see the validation error")

    with g.check("system_prompt_tool_records"):
        stored = rest_events(server, s.conversation.id)
        prompt = next((e for e in stored if e["kind"] == "SystemPromptEvent"), None)
        ensure(prompt is not None, "no SystemPromptEvent")
        records = {t["title"]: t for t in prompt["tools"]}
        expected = {
            "read_file": ("ReadFileTool", "ReadFileAction", "ReadFileObservation", True, {"workspace_root": str(wd)}),
            "write_file": ("WriteFileTool", "WriteFileAction", "WriteFileObservation", False, {"workspace_root": str(wd)}),
            "edit": ("EditTool", "EditAction", "EditObservation", False, {"workspace_root": str(wd)}),
            "list_directory": ("ListDirectoryTool", "ListDirectoryAction", "ListDirectoryObservation", True, None),
        }
        for title, (kind, action_type, observation_type, read_only, meta) in expected.items():
            t = records.get(title)
            ensure(t is not None, f"no record of {title} in {sorted(records)}")
            got = (t.get("kind"), t.get("action_type"), t.get("observation_type"), (t.get("annotations") or {}).get("readOnlyHint"), t.get("meta"))
            ensure(got == (kind, action_type, observation_type, read_only, meta), f"{title}: {short(t, 500)}")


@group(
    "preset_default",
    [
        "create",
        "runs_to_finished",
        "tools_equal_golden",
        "terminal_ran",
        "file_editor_created",
        "file_editor_replaced",
        "task_tracker_planned",
        "think_logged",
    ],
)
def preset_default(g: Group) -> None:
    from openhands.tools.preset.default import get_default_agent

    server = start_server(g)
    llm = start_llm(g)
    wd = server.workspace_dir
    target = wd / "hello.py"
    with g.check("create", fatal=True):
        s = Session(g, server, llm, agent=get_default_agent(preset_llm(llm), cli_mode=True))
        ensure(s.status == Status.IDLE, f"new conversation status {s.status}")

    llm.script(
        call("file_editor", command="create", path=str(target), file_text="print(hello)\n", security_risk="LOW"),
        terminal(f"python3 '{target}' 2>&1 | tail -1"),
        call("file_editor", command="str_replace", path=str(target), old_str="print(hello)", new_str="print('hello')", security_risk="LOW"),
        call("task_tracker", command="plan", task_list=[{"title": "fix hello.py", "status": "done"}], security_risk="LOW"),
        call("think", thought="It should print hello now."),
        terminal(f"python3 '{target}'"),
        finish("hello.py prints hello"),
    )
    with g.check("runs_to_finished", fatal=True):
        s.say_and_run("Create hello.py, run it, fix it.")
        ensure(s.status == Status.FINISHED, f"status {s.status}")

    with g.check("tools_equal_golden"):
        check_tools_equal_golden(llm, "default")

    obs = observations_by_tool(s)
    names = [n for n, _ in obs]
    with g.check("terminal_ran"):
        ensure(names[:6] == ["file_editor", "terminal", "file_editor", "task_tracker", "think", "terminal"], f"observations {names}")
        ensure("NameError" in obs[1][1].text, f"first run {short(obs[1][1].text)}")
        # The reference's shell output may carry terminal control sequences (bracketed paste).
        import re

        lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", obs[5][1].text).splitlines()]
        ensure("hello" in lines and "NameError" not in obs[5][1].text, f"second run {short(obs[5][1].text)}")

    with g.check("file_editor_created"):
        o = obs[0][1]
        ensure(not o.is_error and o.prev_exist is False, f"{o.text!r}")

    with g.check("file_editor_replaced"):
        o = obs[2][1]
        ensure(not o.is_error, f"{o.text!r}")
        ensure(target.read_text() == "print('hello')\n", f"file {target.read_text()!r}")

    with g.check("task_tracker_planned"):
        o = obs[3][1]
        ensure(not o.is_error and [t.title for t in o.task_list] == ["fix hello.py"], f"{o.text!r}")

    with g.check("think_logged"):
        o = obs[4][1]
        ensure(not o.is_error and o.text, f"{o.text!r}")


# --------------------------------------------------------------------------- 5. pause


@group("pause", ["pause_stops_run", "status_paused", "resume_runs_to_finish"])
def pause(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    llm.script(terminal("echo before-pause", delay=3.0), finish("resumed and done"))
    s.conversation.send_message("Run a slow step.")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            s.run()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    with g.check("pause_stops_run"):
        runner.start()
        llm.wait_requests(1, 30)
        s.conversation.pause()
        # The reference's run() returns at once (pause publishes a full state);
        # the step in flight still completes on the server.
        runner.join(RUN_TIMEOUT)
        ensure(not runner.is_alive(), "run() did not return after pause()")
        ensure(not errors, f"run() raised {errors[0] if errors else ''}")

    with g.check("status_paused"):
        wait_for(lambda: rest_info(server, s.conversation.id).get("execution_status") == "paused", 20, 0.5, "REST status paused")
        ensure(s.status == Status.PAUSED, f"client status {s.status}")
        time.sleep(1.0)
        ensure(llm.request_count() == 1, f"{llm.request_count()} LLM requests: the agent went on after the pause")
        ensure(any(e["kind"] == "PauseEvent" for e in rest_events(server, s.conversation.id)), "no PauseEvent stored")

    with g.check("resume_runs_to_finish"):
        s.run()
        ensure(s.status == Status.FINISHED, f"status {s.status}")
        ensure(llm.request_count() == 2, f"{llm.request_count()} LLM requests")
        ensure([a.tool_name for a in s.received(ActionEvent)] == ["terminal", "finish"], "unexpected actions")
        outputs = [observation_text(o) for o in s.received(ObservationEvent) if o.tool_name == "terminal"]
        ensure(len(outputs) == 1 and "before-pause" in outputs[0], f"terminal outputs {outputs}")


# --------------------------------------------------------------------------- 6. confirmation mode


@group(
    "confirmation",
    [
        "set_policy",
        "run_waits_for_confirmation",
        "action_not_executed",
        "reject_gives_user_reject_observation",
        "accept_by_running_again",
        "accepted_action_executed",
    ],
)
def confirmation(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    wd = server.workspace_dir

    with g.check("set_policy", fatal=True):
        s.conversation.set_confirmation_policy(AlwaysConfirm())
        policy = rest_info(server, s.conversation.id).get("confirmation_policy", {})
        ensure(policy.get("kind") == "AlwaysConfirm", f"policy {policy}")

    llm.script(terminal(f"echo rejected > '{wd}/rejected.txt'"))
    with g.check("run_waits_for_confirmation", fatal=True):
        s.say_and_run("Write a file.")
        ensure(s.status == Status.WAITING_FOR_CONFIRMATION, f"status {s.status}")
        ensure(len(s.received(ActionEvent)) == 1, f"{len(s.received(ActionEvent))} actions")

    with g.check("action_not_executed"):
        ensure(not s.received(ObservationEvent), "an observation arrived before confirmation")
        ensure(not (wd / "rejected.txt").exists(), "the action ran without confirmation")

    with g.check("reject_gives_user_reject_observation"):
        action = s.received(ActionEvent)[0]
        s.conversation.reject_pending_actions("no")
        rejection = wait_for(lambda: s.received(UserRejectObservation), 20, what="a UserRejectObservation")[0]
        ensure(rejection.action_id == action.id, "the rejection names another action")
        ensure(rejection.rejection_reason == "no", f"reason {rejection.rejection_reason!r}")
        ensure(not (wd / "rejected.txt").exists(), "the rejected action ran")
        ensure(any(e["kind"] == "UserRejectObservation" for e in rest_events(server, s.conversation.id)), "not stored")

    llm.script(terminal(f"echo accepted > '{wd}/accepted.txt'"), say("Written."))
    with g.check("accept_by_running_again", fatal=True):
        s.say_and_run("Try again.")
        ensure(s.status == Status.WAITING_FOR_CONFIRMATION, f"status after the new action {s.status}")
        s.run()
        ensure(s.status == Status.FINISHED, f"status after accepting {s.status}")

    with g.check("accepted_action_executed"):
        ensure((wd / "accepted.txt").read_text() == "accepted\n", "the accepted action did not run")
        outputs = [o for o in s.received(ObservationEvent) if o.tool_name == "terminal"]
        ensure(len(outputs) == 1, f"{len(outputs)} terminal observations")


# --------------------------------------------------------------------------- 7. secrets


@group("secrets", ["update_secrets", "secret_available_and_masked", "secret_not_sent_to_llm", "secret_not_exposed_by_rest"])
def secrets(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    value = "s3cr3t-value"

    with g.check("update_secrets", fatal=True):
        s.conversation.update_secrets({"MY_TOKEN": value})

    llm.script(terminal("echo token=$MY_TOKEN"), say("Token printed."))
    with g.check("secret_available_and_masked"):
        s.say_and_run("Print the token.")
        outputs = [observation_text(o) for o in s.received(ObservationEvent)]
        ensure(len(outputs) == 1, f"{len(outputs)} observations")
        ensure(value not in outputs[0], "the observation shows the raw secret")
        ensure("token=<secret-hidden>" in outputs[0], f"observation {short(outputs[0])}")

    with g.check("secret_not_sent_to_llm"):
        ensure(llm.requests, "no LLM requests")
        ensure(all(value not in str(r) for r in llm.requests), "an LLM request contains the raw secret")

    with g.check("secret_not_exposed_by_rest"):
        with rest(server) as client:
            info = client.get(f"/api/conversations/{s.conversation.id}").text
            events = client.get(f"/api/conversations/{s.conversation.id}/events/search").text
        ensure(value not in info, "GET conversation shows the raw secret")
        ensure(value not in events, "events/search shows the raw secret")


@group("ask_agent", ["answers", "records_nothing", "sees_history", "unknown_conversation_404"])
def ask_agent(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    llm.script(terminal("echo the-answer-is-$((6*7))"), finish("computed"))
    s.say_and_run("Compute the answer.")
    before = len(rest_events(server, s.conversation.id))
    status_before = rest_info(server, s.conversation.id)["execution_status"]
    llm.script(say("The command printed the-answer-is-42."))
    answer = None

    with g.check("answers", fatal=True):
        answer = s.conversation.ask_agent("What did the command print?")
        ensure(answer == "The command printed the-answer-is-42.", f"answer {answer!r}")

    with g.check("records_nothing"):
        after = len(rest_events(server, s.conversation.id))
        ensure(after == before, f"{after} events after ask_agent, {before} before")
        status = rest_info(server, s.conversation.id)["execution_status"]
        ensure(status == status_before, f"status {status}, before {status_before}")

    with g.check("sees_history"):
        last = llm.requests[-1]
        text = str(last.get("messages"))
        ensure("the-answer-is-42" in text, "the question's request lacks the command output")
        ensure("What did the command print?" in text, "the request lacks the question")

    with g.check("unknown_conversation_404"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{uuid.uuid4()}/ask_agent", json={"question": "hi"})
        ensure(resp.status_code == 404, f"status {resp.status_code}: {short(resp.text)}")


@group(
    "fork",
    ["fork_whole", "fork_info", "fork_from_event", "fork_independent", "fork_conflict_409", "fork_unknown_404"],
)
def fork(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    llm.script(terminal("echo forked-history"), finish("first turn done"))
    s.say_and_run("Run the first turn.")
    source_events = rest_events(server, s.conversation.id)
    source_cost = rest_info(server, s.conversation.id)["stats"]["usage_to_metrics"]
    forked = None

    with g.check("fork_whole", fatal=True):
        forked = s.conversation.fork(title="A fork", tags={"kind": "fork"})
        g.defer(forked.close)
        ensure(forked.id != s.conversation.id, "the fork has the source's id")
        events = rest_events(server, forked.id)
        ensure([e["id"] for e in events] == [e["id"] for e in source_events],
               f"{len(events)} events in the fork, {len(source_events)} in the source")

    with g.check("fork_info"):
        info = rest_info(server, forked.id)
        ensure(info["title"] == "A fork", f"title {info['title']!r}")
        ensure(info["tags"] == {"kind": "fork"}, f"tags {info['tags']}")
        ensure(info["execution_status"] == "idle", f"status {info['execution_status']}")
        ensure(source_cost, "the source has no stats to reset")
        cost = sum(m.get("accumulated_cost", 0) for m in info["stats"]["usage_to_metrics"].values())
        ensure(cost == 0, f"the fork's stats were not reset: cost {cost}")

    with g.check("fork_from_event"):
        first_user = next(i for i, e in enumerate(source_events) if e.get("source") == "user" and e.get("kind") == "MessageEvent")
        partial = s.conversation.fork(from_event_id=source_events[first_user]["id"])
        g.defer(partial.close)
        events = rest_events(server, partial.id)
        ensure(len(events) == first_user + 1, f"{len(events)} events, expected {first_user + 1}")

    # Only a message, not a run: the reference's fork loses the agent's LLM key (1.58.2),
    # so a run of a fork fails there; ours runs (oh-server's tests/fork.rs).
    with g.check("fork_independent"):
        before = len(rest_events(server, forked.id))
        forked.send_message("Continue on the fork.")
        wait_for(lambda: len(rest_events(server, forked.id)) > before, 10, what="the fork's new message")
        after = rest_events(server, s.conversation.id)
        ensure(len(after) == len(source_events), f"the source changed: {len(after)} events, {len(source_events)} before")

    with g.check("fork_conflict_409"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{s.conversation.id}/fork", json={"id": str(forked.id)})
        ensure(resp.status_code == 409, f"status {resp.status_code}: {short(resp.text)}")

    with g.check("fork_unknown_404"):
        with rest(server) as client:
            unknown = client.post(f"/api/conversations/{uuid.uuid4()}/fork", json={})
            bad_event = client.post(f"/api/conversations/{s.conversation.id}/fork", json={"from_event_id": "no-such-event"})
        ensure(unknown.status_code == 404, f"unknown source: {unknown.status_code}")
        ensure(bad_event.status_code == 404, f"unknown from_event_id: {bad_event.status_code}: {short(bad_event.text)}")


@group(
    "navigate",
    ["navigate_back", "final_response_follows_head", "continues_from_head", "log_keeps_every_branch",
     "empty_tree", "unknown_event_404", "unknown_conversation_404", "bad_body_422"],
)
def navigate(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    llm.script(finish("answer-one"))
    s.say_and_run("first-question")
    cid = s.conversation.id
    before = rest_events(server, cid)
    question = next(e for e in before if e.get("kind") == "MessageEvent" and e.get("source") == "user")

    def final_response() -> str:
        with rest(server) as client:
            resp = client.get(f"/api/conversations/{cid}/agent_final_response")
        resp.raise_for_status()
        return resp.json()["response"]

    with g.check("navigate_back", fatal=True):
        ensure(final_response() == "answer-one", f"final response before: {final_response()!r}")
        s.conversation.navigate_to(question["id"])
        info = rest_info(server, cid)
        ensure(info.get("leaf_event_id") == question["id"], f"leaf_event_id {info.get('leaf_event_id')!r}")

    with g.check("final_response_follows_head"):
        response = final_response()
        ensure(response == "", f"the abandoned branch's answer is still the final response: {response!r}")

    with g.check("continues_from_head"):
        llm.script(finish("answer-two"))
        s.say_and_run("second-question")
        text = str(llm.requests[-1].get("messages"))
        ensure("first-question" in text and "second-question" in text, "the request lacks the kept history")
        ensure("answer-one" not in text, "the request still holds the abandoned branch")
        ensure(final_response() == "answer-two", f"final response {final_response()!r}")

    with g.check("log_keeps_every_branch"):
        after = rest_events(server, cid)
        ids = {e["id"] for e in after}
        ensure(all(e["id"] in ids for e in before), "events of the abandoned branch were removed")
        second = next(e for e in after if e.get("kind") == "MessageEvent" and "second-question" in str(e))
        ensure(second.get("parent_id") == question["id"], f"parent_id {second.get('parent_id')!r}")

    with g.check("empty_tree"):
        s.conversation.navigate_to(None)
        info = rest_info(server, cid)
        ensure(info.get("leaf_event_id") is None, f"leaf_event_id {info.get('leaf_event_id')!r}")

    with g.check("unknown_event_404"):
        try:
            s.conversation.navigate_to("no-such-event")
            raise AssertionError("navigate_to an unknown event succeeded")
        except httpx.HTTPStatusError as e:
            ensure(e.response.status_code == 404, f"status {e.response.status_code}")
            ensure(e.response.json().get("detail") == "Unknown event_id: no-such-event", short(e.response.text))

    with g.check("unknown_conversation_404"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{uuid.uuid4()}/navigate", json={"event_id": None})
        ensure(resp.status_code == 404, f"status {resp.status_code}: {short(resp.text)}")
        ensure(resp.json().get("detail") == "Conversation not found", short(resp.text))

    with g.check("bad_body_422"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{cid}/navigate", json={"event_id": 5})
        ensure(resp.status_code == 422, f"status {resp.status_code}: {short(resp.text)}")


def scripted_llm_doc(llm: ScriptedLLM, key: str, usage_id: str = "agent") -> dict:
    """An LLM document (settings, profiles) for the scripted LLM."""
    return {"model": "openai/scripted", "base_url": llm.base_url, "api_key": key,
            "usage_id": usage_id, "num_retries": 0}


def tool_names(agent: dict) -> list[str]:
    return [t["name"] for t in agent.get("tools") or []]


@group(
    "agent_settings",
    ["settings_agent_built", "settings_key_not_shown", "settings_runs", "settings_invalid_422",
     "profile_saved", "profile_agent_built", "profile_runs", "profile_unknown_404",
     "profile_dangling_llm_422", "profile_rename_activate_delete"],
)
def agent_settings(g: Group) -> None:
    from openhands.sdk.conversation.request import StartConversationRequest
    from openhands.sdk.workspace import LocalWorkspace

    server = start_server(g)
    llm = start_llm(g)
    ws = workspace(server)
    local = LocalWorkspace(working_dir=str(server.workspace_dir))
    settings_key = "sk-agent-settings-" + uuid.uuid4().hex[:8]
    conv = None

    def create(**source):
        c = RemoteConversation.create(
            ws, StartConversationRequest(workspace=local, autotitle=False, **source), visualizer=None)
        g.defer(c.close)
        return c

    with g.check("settings_agent_built", fatal=True):
        conv = create(agent_settings={"llm": scripted_llm_doc(llm, settings_key),
                                      "condenser": {"max_size": 60, "keep_first": 3}})
        agent = rest_info(server, conv.id)["agent"]
        ensure(tool_names(agent) == ["terminal", "file_editor", "task_tracker"], f"tools {tool_names(agent)}")
        ensure({"FinishTool", "ThinkTool"} <= set(agent["include_default_tools"]), f"built-ins {agent['include_default_tools']}")
        condenser = agent.get("condenser") or {}
        ensure(condenser.get("kind") == "LLMSummarizingCondenser", f"condenser {condenser.get('kind')!r}")
        ensure((condenser.get("max_size"), condenser.get("keep_first")) == (60, 3), f"condenser {condenser.get('max_size')}/{condenser.get('keep_first')}")
        ensure(condenser["llm"]["usage_id"] == "condenser", f"condenser usage_id {condenser['llm'].get('usage_id')!r}")
        ensure(agent["llm"]["model"] == "openai/scripted" and agent["llm"]["base_url"] == llm.base_url, "the settings' LLM is not the agent's")

    with g.check("settings_key_not_shown"):
        with rest(server) as client:
            text = client.get(f"/api/conversations/{conv.id}").text
        ensure(settings_key not in text, "the LLM key is in the conversation's info")

    with g.check("settings_runs"):
        llm.script(finish("done-from-settings"))
        conv.send_message("Finish right away.")
        conv.run(timeout=RUN_TIMEOUT)
        status = rest_info(server, conv.id)["execution_status"]
        ensure(status == "finished", f"status {status}")
        ensure(f"Bearer {settings_key}" in llm.authorizations, "the settings' key did not reach the LLM")

    with g.check("settings_invalid_422"):
        with rest(server) as client:
            for bad in ({"condenser": {"max_size": 5}}, {"agent_kind": "bogus"}):
                resp = client.post("/api/conversations", json={
                    "workspace": {"kind": "LocalWorkspace", "working_dir": str(server.workspace_dir)},
                    "agent_settings": bad})
                ensure(resp.status_code == 422, f"{bad}: status {resp.status_code}: {short(resp.text)}")

    profile_key = "sk-agent-profile-" + uuid.uuid4().hex[:8]
    profile_id = None
    with g.check("profile_saved", fatal=True):
        with rest(server) as client:
            resp = client.post("/api/profiles/fast", json={"llm": scripted_llm_doc(llm, profile_key)})
            ensure(resp.status_code == 201, f"LLM profile: {resp.status_code}: {short(resp.text)}")
            resp = client.post("/api/agent-profiles/coder", json={"llm_profile_ref": "fast", "tools": [{"name": "terminal"}]})
            ensure(resp.status_code == 201, f"agent profile: {resp.status_code}: {short(resp.text)}")
            ensure(resp.json() == {"name": "coder", "message": "Agent profile 'coder' saved"}, short(resp.text))
            listed = client.get("/api/agent-profiles").json()
            coder = [p for p in listed["profiles"] if p["name"] == "coder"]
            ensure(len(coder) == 1 and coder[0]["llm_profile_ref"] == "fast", f"listing {listed}")
            ensure(listed["active_agent_profile_id"] is not None, "no profile is active")
            profile_id = coder[0]["id"]
            got = client.get("/api/agent-profiles/coder").json()
            ensure(got["profile"]["id"] == profile_id and got["profile"]["revision"] == 0, short(str(got)))
            ensure(profile_key not in str(got), "the profile holds the key")

    with g.check("profile_agent_built", fatal=True):
        conv = create(agent_profile_id=uuid.UUID(profile_id))
        info = rest_info(server, conv.id)
        ensure(tool_names(info["agent"]) == ["terminal"], f"tools {tool_names(info['agent'])}")
        launched = info.get("launched_agent_profile") or {}
        ensure(launched.get("agent_profile_id") == profile_id, f"launched_agent_profile {launched}")
        ensure(info["agent"]["llm"]["base_url"] == llm.base_url, "the LLM profile is not the agent's")

    with g.check("profile_runs"):
        llm.script(finish("done-from-profile"))
        conv.send_message("Finish right away.")
        conv.run(timeout=RUN_TIMEOUT)
        status = rest_info(server, conv.id)["execution_status"]
        ensure(status == "finished", f"status {status}")
        ensure(f"Bearer {profile_key}" in llm.authorizations, "the LLM profile's key did not reach the LLM")

    body = {"workspace": {"kind": "LocalWorkspace", "working_dir": str(server.workspace_dir)}}
    with g.check("profile_unknown_404"):
        unknown = str(uuid.uuid4())
        with rest(server) as client:
            resp = client.post("/api/conversations", json={**body, "agent_profile_id": unknown})
            ensure(resp.status_code == 404, f"status {resp.status_code}: {short(resp.text)}")
            ensure(resp.json()["detail"] == f"Agent profile with id '{unknown}' not found", short(resp.text))
            ensure(client.get("/api/agent-profiles/missing").status_code == 404, "GET of a missing profile")

    with g.check("profile_dangling_llm_422"):
        with rest(server) as client:
            client.post("/api/agent-profiles/dangling", json={"llm_profile_ref": "nowhere"}).raise_for_status()
            dangling = client.get("/api/agent-profiles/dangling").json()["profile"]["id"]
            resp = client.post("/api/conversations", json={**body, "agent_profile_id": dangling})
        ensure(resp.status_code == 422, f"status {resp.status_code}: {short(resp.text)}")
        detail = resp.json()["detail"]
        ensure(detail.get("code") == "unresolved_profile_references" and detail.get("dangling_llm_profile_ref") == "nowhere", short(resp.text))

    with g.check("profile_rename_activate_delete"):
        with rest(server) as client:
            resp = client.post(f"/api/agent-profiles/{profile_id}/activate")
            ensure(resp.status_code == 200 and resp.json()["agent_settings_applied"] is False, short(resp.text))
            ensure(client.get("/api/agent-profiles").json()["active_agent_profile_id"] == profile_id, "not activated")
            resp = client.post("/api/agent-profiles/coder/rename", json={"new_name": "coder2"})
            ensure(resp.status_code == 200, f"rename: {resp.status_code}: {short(resp.text)}")
            ensure(client.get("/api/agent-profiles/coder2").json()["profile"]["id"] == profile_id, "the id changed on rename")
            conflict = client.post("/api/agent-profiles/coder2/rename", json={"new_name": "dangling"})
            ensure(conflict.status_code == 409, f"rename onto another: {conflict.status_code}")
            ensure(client.post("/api/agent-profiles/nope/activate").status_code == 404, "activate of an unknown id")
            for _ in range(2):
                resp = client.delete("/api/agent-profiles/coder2")
                ensure(resp.status_code == 200, f"delete: {resp.status_code}: {short(resp.text)}")
            listed = client.get("/api/agent-profiles").json()
            ensure(all(p["name"] != "coder2" for p in listed["profiles"]), "still listed")
            ensure(listed["active_agent_profile_id"] not in (None, profile_id), f"active {listed['active_agent_profile_id']}")


class SecretSource:
    """A loopback HTTP server holding one secret: `GET /secret` with the right
    `X-Vault-Key` answers the value as text, anything else 401 or 404."""

    def __init__(self, value: str, key: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        source = self
        self.value, self.key, self.hits = value, key, 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                source.hits += 1
                if self.path != "/secret":
                    status, body = 404, b"no such secret"
                elif self.headers.get("x-vault-key") != source.key:
                    status, body = 401, b"wrong key"
                else:
                    status, body = 200, source.value.encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@group(
    "lookup_secrets",
    ["update_with_lookup", "not_fetched_before_use", "value_reaches_shell_masked", "not_exposed", "failed_lookup_reported"],
)
def lookup_secrets(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    value, key = f"vault-{uuid.uuid4().hex}", f"vault-key-{uuid.uuid4().hex[:8]}"
    vault = SecretSource(value, key)
    g.defer(vault.stop)
    s = Session(g, server, llm)

    with g.check("update_with_lookup", fatal=True):
        s.conversation.update_secrets({
            "VAULT_TOKEN": LookupSecret(url=f"{vault.url}/secret", headers={"X-Vault-Key": key}),
            "BROKEN_TOKEN": LookupSecret(url=f"{vault.url}/missing", headers={"X-Vault-Key": key}),
        })

    with g.check("not_fetched_before_use"):
        ensure(vault.hits == 0, f"fetched {vault.hits} time(s) before any command used it")

    llm.script(
        terminal('printf %s "$VAULT_TOKEN" | sha256sum; echo "v=$VAULT_TOKEN"'),
        terminal('echo "b=[$BROKEN_TOKEN]"'),
        say("Done with the vault."),
    )
    outputs: list[str] = []
    with g.check("value_reaches_shell_masked"):
        s.say_and_run("Use the vault token.")
        outputs = [observation_text(o) for o in s.received(ObservationEvent)]
        ensure(len(outputs) == 2, f"{len(outputs)} observations")
        ensure(hashlib.sha256(value.encode()).hexdigest() in outputs[0], f"the shell did not get the value: {short(outputs[0])}")
        ensure(value not in outputs[0] and "v=<secret-hidden>" in outputs[0], f"observation {short(outputs[0])}")

    with g.check("not_exposed"):
        ensure(all(value not in str(r) for r in llm.requests), "an LLM request holds the value")
        with rest(server) as client:
            info = client.get(f"/api/conversations/{s.conversation.id}").text
            events = client.get(f"/api/conversations/{s.conversation.id}/events/search").text
        ensure(value not in info and value not in events, "REST shows the value")
        ensure(key not in info and key not in events, "REST shows the lookup's header")

    with g.check("failed_lookup_reported"):
        ensure(len(outputs) == 2, "no second observation")
        ensure(s.status == Status.FINISHED, f"status {s.status}")
        ensure("b=[]" in outputs[1], f"a failed lookup gave the command a value: {short(outputs[1])}")


def session_frames(server: ServerProcess, conversation_id, after_seq=None, until=None, timeout: float = 20.0):
    """Opens `/sockets/session/{id}` and collects JSON frames until `until(frames)` holds
    (or, without it, the sync frame and the replay up to its through_seq)."""
    import json as _json
    from websockets.sync.client import connect

    query = f"session_api_key={API_KEY}"
    if after_seq is not None:
        query += f"&after_seq={after_seq}"
    url = server.url.replace("http://", "ws://") + f"/sockets/session/{conversation_id}?{query}"
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    with connect(url, open_timeout=10) as ws:
        while time.monotonic() < deadline:
            frames.append(_json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
            sync = frames[0]
            if until is not None:
                if until(frames):
                    return frames
            elif sync.get("through_seq") is None or (
                frames[-1].get("type") == "durable" and frames[-1]["seq"] >= sync["through_seq"]
            ) or after_seq is None:
                return frames
    raise TimeoutError(f"session socket: {len(frames)} frame(s) in {timeout:.0f} s")


@group("session_socket", ["sync_first", "replay_matches_log", "resume_after_seq", "live_continues", "unknown_conversation_4004"])
def session_socket(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    llm.script(terminal("echo on-the-session-socket"), finish("done"))
    s.say_and_run("Run a command.")
    log = rest_events(server, s.conversation.id)
    frames: list[dict] = []

    with g.check("sync_first", fatal=True):
        frames = session_frames(server, s.conversation.id, after_seq=-1)
        sync = frames[0]
        ensure(sync.get("type") == "sync" and sync.get("from_seq") == -1, f"first frame {short(sync)}")
        ensure(isinstance(sync.get("through_seq"), int) and sync["through_seq"] >= len(log) - 1,
               f"through_seq {sync.get('through_seq')}, {len(log)} events over REST")

    with g.check("replay_matches_log"):
        durable = [f for f in frames[1:] if f.get("type") == "durable"]
        ensure([f["seq"] for f in durable] == list(range(len(durable))), f"seqs {[f['seq'] for f in durable][:10]}")
        ids = [f["event"]["id"] for f in durable]
        rest_ids = [e["id"] for e in log]
        ensure([i for i in ids if i in set(rest_ids)] == rest_ids, "the replay's order differs from events/search")

    with g.check("resume_after_seq"):
        resumed = session_frames(server, s.conversation.id, after_seq=1)
        first = next((f for f in resumed if f.get("type") == "durable"), None)
        ensure(first is not None and first["seq"] == 2, f"first replayed frame {short(first)}")
        ensure(first["event"]["id"] == frames[1 + 2]["event"]["id"], "seq 2 is another event than before")

    with g.check("live_continues"):
        total = frames[0]["through_seq"] + 1
        llm.script(say("Second turn."))
        def done(got: list[dict]) -> bool:
            if len(got) == 1:
                with rest(server) as client:
                    client.post(f"/api/conversations/{s.conversation.id}/events",
                                json={"role": "user", "content": [{"type": "text", "text": "again"}], "run": True}).raise_for_status()
            return any(f.get("type") == "durable" and f["event"].get("source") == "agent"
                       and f["event"].get("kind") == "MessageEvent" for f in got)
        live = session_frames(server, s.conversation.id, until=done)
        seqs = [f["seq"] for f in live if f.get("type") == "durable"]
        ensure(seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"live seqs {seqs}")
        ensure(seqs[0] >= total, f"live seq {seqs[0]} repeats the replayed range (through {total - 1})")

    with g.check("unknown_conversation_4004"):
        from websockets.exceptions import ConnectionClosed
        try:
            session_frames(server, uuid.uuid4(), timeout=5)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            ensure(code == 4004, f"close code {code}")
        else:
            raise AssertionError("the socket of an unknown conversation stayed open")
# --------------------------------------------------------------------------- 7b. settings store


@group(
    "settings",
    [
        "patch_settings_masked",
        "expose_header",
        "put_secrets",
        "bad_input_4xx",
        "get_llm",
        "get_secrets",
        "get_mcp_config",
        "get_secret_value",
        "mcp_routes",
        "profile_get_llm",
        "profile_rename",
        "persist_across_restart",
        "delete_secret",
        "acp_variant",
        "conversation_with_stored_llm",
        "stored_secret_reaches_shell_masked",
        "no_key_401",
    ],
)
def settings_store(g: Group) -> None:
    """Example 13: settings and secrets written over REST, read back by the
    SDK's RemoteWorkspace (get_llm, get_secrets, get_mcp_config)."""
    server = start_server(g)
    llm_key = "sk-conformance-llm-key"
    token = "s3cr3t-token-value"
    diff = {
        "agent_settings_diff": {
            "llm": {"model": "openai/conformance-model", "api_key": llm_key, "base_url": "http://127.0.0.1:9/v1"},
            "mcp_config": {
                "fetch": {"url": "http://127.0.0.1:9/mcp", "transport": "sse", "headers": {"Authorization": "Bearer mcp-tok"}},
                "local": {"command": "uvx", "args": ["mcp-server-fetch"]},
            },
        }
    }
    with g.check("patch_settings_masked", fatal=True):
        with rest(server) as client:
            resp = client.patch("/api/settings", json=diff)
        ensure(resp.status_code == 200, f"PATCH {resp.status_code} {short(resp.text)}")
        body = resp.json()
        ensure(llm_key not in resp.text, "the PATCH answer shows the LLM key")
        ensure(body["agent_settings"]["llm"]["api_key"] == "**********", "the LLM key is not masked")
        ensure(body["llm_api_key_is_set"] is True, "llm_api_key_is_set is not true")
        ensure(body["agent_settings"]["llm"]["model"] == "openai/conformance-model", "model not saved")

    with g.check("expose_header"):
        with rest(server) as client:
            masked = client.get("/api/settings")
            plain = client.get("/api/settings", headers={"X-Expose-Secrets": "plaintext"})
            encrypted = client.get("/api/settings", headers={"X-Expose-Secrets": "encrypted"})
            bogus = client.get("/api/settings", headers={"X-Expose-Secrets": "please"})
        ensure(masked.status_code == 200 and llm_key not in masked.text, "GET without the header shows the key")
        headers = masked.json()["agent_settings"]["mcp_config"]["fetch"]["headers"]
        ensure(headers == {"Authorization": "**********"}, f"MCP headers {headers}")
        ensure(plain.json()["agent_settings"]["llm"]["api_key"] == llm_key, "plaintext does not show the key")
        sealed = encrypted.json()["agent_settings"]["llm"]["api_key"]
        ensure(sealed.startswith("gAAAAA") and llm_key not in encrypted.text, f"encrypted key {short(sealed)}")
        ensure(bogus.status_code == 400 and "detail" in bogus.json(), f"bad header {bogus.status_code}")

    with g.check("put_secrets", fatal=True):
        with rest(server) as client:
            one = client.put("/api/settings/secrets", json={"name": "MY_TOKEN", "value": token, "description": "a token"})
            two = client.put("/api/settings/secrets", json={"name": "OTHER", "value": "other-value"})
        ensure(one.status_code == 200 and one.json() == {"name": "MY_TOKEN", "description": "a token"}, f"PUT {one.status_code} {short(one.text)}")
        ensure(two.status_code == 200 and two.json() == {"name": "OTHER", "description": None}, f"PUT {two.status_code} {short(two.text)}")

    with g.check("bad_input_4xx"):
        with rest(server) as client:
            cases = [
                ("PATCH empty", client.patch("/api/settings", json={}), 400),
                ("PATCH wrong type", client.patch("/api/settings", json={"agent_settings_diff": {"llm": {"model": 5}}}), 422),
                ("PATCH not a dict", client.patch("/api/settings", json={"agent_settings_diff": 5}), 422),
                ("PATCH null field", client.patch("/api/settings", json={"conversation_settings_diff": {"confirmation_mode": None}}), 422),
                ("PUT bad name", client.put("/api/settings/secrets", json={"name": "1bad", "value": "v"}), 422),
                ("PUT blank value", client.put("/api/settings/secrets", json={"name": "X", "value": "  "}), 422),
                ("PUT redacted value", client.put("/api/settings/secrets", json={"name": "X", "value": "**********"}), 422),
                ("PUT no value", client.put("/api/settings/secrets", json={"name": "X"}), 422),
                ("GET unknown", client.get("/api/settings/secrets/NOPE"), 404),
                ("GET bad name", client.get("/api/settings/secrets/1bad"), 422),
                ("DELETE unknown", client.delete("/api/settings/secrets/NOPE"), 404),
                ("profile unknown", client.get("/api/profiles/nope"), 404),
                ("profile bad name", client.get("/api/profiles/bad%20name"), 422),
            ]
        for label, resp, status in cases:
            ensure(resp.status_code == status, f"{label}: {resp.status_code} {short(resp.text)}")
            ensure("detail" in resp.json(), f"{label}: no detail")

    ws = workspace(server)
    with g.check("get_llm"):
        got = ws.get_llm()
        ensure(got.model == "openai/conformance-model", f"model {got.model}")
        ensure(got.api_key is not None and got.api_key.get_secret_value() == llm_key, "api_key differs")
        ensure(got.base_url == "http://127.0.0.1:9/v1", f"base_url {got.base_url}")
        ensure(ws.get_llm(temperature=0.25).temperature == 0.25, "overrides are not applied")

    with g.check("get_secrets"):
        secrets = ws.get_secrets()
        ensure(sorted(secrets) == ["MY_TOKEN", "OTHER"], f"names {sorted(secrets)}")
        ensure(secrets["MY_TOKEN"].url == f"{server.url}/api/settings/secrets/MY_TOKEN", f"url {secrets['MY_TOKEN'].url}")
        ensure(secrets["MY_TOKEN"].description == "a token", "description differs")
        ensure(list(ws.get_secrets(names=["OTHER"])) == ["OTHER"], "the names filter")

    with g.check("get_mcp_config"):
        mcp = ws.get_mcp_config()
        ensure(sorted(mcp) == ["fetch", "local"], f"servers {sorted(mcp)}")
        ensure(mcp["fetch"].url == "http://127.0.0.1:9/mcp", f"url {mcp['fetch'].url}")
        ensure(mcp["fetch"].headers["Authorization"].get_secret_value() == "Bearer mcp-tok", "MCP header differs")
        ensure(mcp["local"].command == "uvx" and mcp["local"].args == ["mcp-server-fetch"], "stdio server differs")

    with g.check("get_secret_value"):
        ensure(ws._get_secret_value("MY_TOKEN") == token, "the secret value differs")
        ensure(ws._get_secret_value("NOPE") is None, "an unknown secret has a value")
        with rest(server) as client:
            resp = client.get("/api/settings/secrets/MY_TOKEN")
        ensure(resp.headers.get("content-type", "").startswith("text/plain"), f"content-type {resp.headers.get('content-type')}")

    with g.check("mcp_routes"):
        extra = {"url": "http://127.0.0.1:9/extra", "transport": "http", "headers": {"X-Key": "mcp-extra-key"}}
        with rest(server) as client:
            created = client.post("/api/settings/mcp/extra", json=extra)
            ensure(created.status_code == 201, f"create {created.status_code} {short(created.text)}")
            ensure("mcp-extra-key" not in created.text, "the create answer shows the header")
            ensure(client.post("/api/settings/mcp/extra", json=extra).status_code == 409, "a second create")
            ensure(client.post("/api/settings/mcp/bad", json={"transport": "stdio"}).status_code == 422, "a stdio server without command")
            patched = client.patch("/api/settings/mcp/extra", json={"enabled": False, "headers": {"X-Key": None, "X-New": "n"}})
            ensure(patched.status_code == 200, f"patch {patched.status_code} {short(patched.text)}")
            ensure(client.patch("/api/settings/mcp/nope", json={"enabled": False}).status_code == 404, "patch of an unknown server")
        mcp = ws.get_mcp_config()
        ensure(mcp["extra"].enabled is False, "enabled not patched")
        ensure(list(mcp["extra"].headers) == ["X-New"], f"headers {list(mcp['extra'].headers)}")
        with rest(server) as client:
            deleted = client.delete("/api/settings/mcp/extra")
            ensure(deleted.status_code == 200, f"delete {deleted.status_code}")
            ensure(client.delete("/api/settings/mcp/extra").status_code == 404, "a second delete")
        ensure(sorted(ws.get_mcp_config()) == ["fetch", "local"], "the deleted server is still there")

    with g.check("profile_get_llm"):
        with rest(server) as client:
            saved = client.post("/api/profiles/fast", json={"llm": {"model": "openai/fast-model", "api_key": "sk-fast"}})
            ensure(saved.status_code == 201, f"save {saved.status_code} {short(saved.text)}")
            listed = client.get("/api/profiles").json()
            ensure([p["name"] for p in listed["profiles"]] == ["fast"], f"profiles {listed}")
            ensure(listed["profiles"][0]["api_key_set"] is True, "api_key_set")
            detail = client.get("/api/profiles/fast").json()
            ensure(detail["config"]["api_key"] is None and detail["api_key_set"] is True, "profile key not hidden")
        fast = ws.get_llm(profile_name="fast")
        ensure(fast.model == "openai/fast-model" and fast.usage_id == "profile:fast", f"profile llm {fast.model} {fast.usage_id}")
        ensure(fast.api_key is not None and fast.api_key.get_secret_value() == "sk-fast", "profile key differs")
        try:
            ws.get_llm(profile_name="missing")
            ensure(False, "an unknown profile gave an LLM")
        except FileNotFoundError:
            pass
        with rest(server) as client:
            act = client.post("/api/profiles/fast/activate")
        ensure(act.status_code == 200 and act.json()["llm_applied"] is True, f"activate {act.status_code} {short(act.text)}")
        active = ws.get_llm()
        ensure(active.model == "openai/fast-model" and active.usage_id == "profile:fast", f"active {active.model} {active.usage_id}")
        with rest(server) as client:
            back = client.patch("/api/settings", json={"active_profile": None, "agent_settings_diff": diff["agent_settings_diff"]})
        ensure(back.status_code == 200 and back.json()["active_profile"] is None, f"clear {back.status_code}")

    with g.check("profile_rename"):
        with rest(server) as client:
            client.post("/api/profiles/slow", json={"llm": {"model": "openai/slow-model"}})
            client.post("/api/profiles/slow/activate")
            renamed = client.post("/api/profiles/slow/rename", json={"new_name": "slower"})
            ensure(renamed.status_code == 200 and renamed.json()["name"] == "slower", f"rename {renamed.status_code} {short(renamed.text)}")
            ensure(client.get("/api/settings").json()["active_profile"] == "slower", "active_profile not renamed")
            ensure(client.post("/api/profiles/fast/rename", json={"new_name": "slower"}).status_code == 409, "rename onto a profile")
            ensure(client.post("/api/profiles/gone/rename", json={"new_name": "x"}).status_code == 404, "rename of nothing")
            ensure(client.post("/api/profiles/fast/rename", json={"new_name": "bad name"}).status_code == 422, "a bad new name")
        ensure(ws.get_llm().usage_id == "profile:slower", "get_llm after the rename")
        with rest(server) as client:
            ensure(client.delete("/api/profiles/slower").status_code == 200, "delete")
            back = client.patch("/api/settings", json={"agent_settings_diff": diff["agent_settings_diff"]})
            ensure(back.json()["active_profile"] is None, "the deleted profile stays active")

    with g.check("persist_across_restart", fatal=True):
        server.stop()
        server.start()
        again = workspace(server)
        got = again.get_llm()
        ensure(got.model == "openai/conformance-model", f"model {got.model}")
        ensure(got.api_key is not None and got.api_key.get_secret_value() == llm_key, "api_key lost")
        ensure(sorted(again.get_secrets()) == ["MY_TOKEN", "OTHER"], "secrets lost")
        ensure(again._get_secret_value("MY_TOKEN") == token, "secret value lost")
        ensure(again.get_llm(profile_name="fast").model == "openai/fast-model", "profile lost")

    with g.check("delete_secret"):
        with rest(server) as client:
            resp = client.delete("/api/settings/secrets/OTHER")
        ensure(resp.status_code == 200 and resp.json() == {"deleted": True}, f"DELETE {resp.status_code} {short(resp.text)}")
        ensure(sorted(ws.get_secrets()) == ["MY_TOKEN"], "the secret is still listed")
        ensure(ws._get_secret_value("OTHER") is None, "the deleted secret has a value")

    with g.check("acp_variant"):
        with rest(server) as client:
            acp = client.patch("/api/settings", json={"agent_settings_diff": {"agent_kind": "acp", "acp_server": "codex"}})
            ensure(acp.status_code == 200, f"PATCH acp {acp.status_code} {short(acp.text)}")
            agent_settings = acp.json()["agent_settings"]
            ensure(agent_settings["acp_server"] == "codex" and "llm" not in agent_settings, f"acp settings {short(agent_settings)}")
            refused = client.patch("/api/settings", json={"agent_settings_diff": {"llm": {"model": "x"}}})
            ensure(refused.status_code == 422, f"an LLM on ACP settings: {refused.status_code}")
        ensure(ws.get_mcp_config() == {}, "ACP settings have MCP servers")
        try:
            ws.get_llm()
            ensure(False, "get_llm on ACP settings gave an LLM")
        except ValueError:
            pass
        with rest(server) as client:
            back = client.patch("/api/settings", json={"agent_settings_diff": {"agent_kind": "openhands"}})
        ensure(back.status_code == 200 and back.json()["agent_settings"]["llm"]["model"] == "gpt-5.6", f"back {back.status_code}")

    llm = start_llm(g)
    events: list = []
    llm.script(
        terminal('printf %s "$MY_TOKEN" | sha256sum; echo "token=$MY_TOKEN"'),
        finish("done with the token"),
    )
    with g.check("conversation_with_stored_llm", fatal=True):
        stored = {"model": "openai/scripted", "base_url": llm.base_url, "api_key": llm_key, "num_retries": 0}
        with rest(server) as client:
            resp = client.patch("/api/settings", json={"agent_settings_diff": {"llm": stored}})
        ensure(resp.status_code == 200, f"PATCH {resp.status_code} {short(resp.text)}")
        agent = Agent(llm=ws.get_llm(usage_id="agent"), tools=get_default_tools(enable_browser=False))
        conversation = Conversation(
            agent=agent, workspace=ws, secrets=ws.get_secrets(), callbacks=[events.append], visualizer=None
        )
        g.defer(conversation.close)
        conversation.send_message("Use the token.")
        conversation.run(timeout=RUN_TIMEOUT)
        status = conversation.state.execution_status
        ensure(status == Status.FINISHED, f"status {status}")
        ensure(llm.authorizations and all(a == f"Bearer {llm_key}" for a in llm.authorizations),
               f"{len(llm.authorizations)} LLM requests, not all with the stored key")

    with g.check("stored_secret_reaches_shell_masked"):
        outputs = [observation_text(e) for e in events if isinstance(e, ObservationEvent) and e.tool_name == "terminal"]
        ensure(len(outputs) == 1, f"{len(outputs)} terminal observations")
        ensure(hashlib.sha256(token.encode()).hexdigest() in outputs[0], f"the shell did not get the value: {short(outputs[0])}")
        ensure(token not in outputs[0] and "token=<secret-hidden>" in outputs[0], f"observation {short(outputs[0])}")
        ensure(all(token not in str(r) for r in llm.requests), "an LLM request holds the value")

    with g.check("no_key_401"):
        with rest(server, api_key=None) as client:
            for method, path in (("GET", "/api/settings"), ("GET", "/api/settings/secrets"), ("GET", "/api/settings/secrets/MY_TOKEN"), ("GET", "/api/profiles")):
                resp = client.request(method, path)
                ensure(resp.status_code == 401, f"{method} {path} without the key: {resp.status_code}")
        try:
            workspace(server, api_key=None).get_llm()
            ensure(False, "get_llm without the key succeeded")
        except httpx.HTTPStatusError as exc:
            ensure(exc.response.status_code == 401, f"status {exc.response.status_code}")


@group("runtime_info", ["get_runtime", "reprovision", "unknown_404"])
def runtime_info(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    expected = {"runtime_status": "available", "can_resume": True}

    with g.check("get_runtime"):
        with rest(server) as client:
            resp = client.get(f"/api/conversations/{s.conversation.id}/runtime")
        ensure(resp.status_code == 200, f"status {resp.status_code}: {short(resp.text)}")
        body = resp.json()
        ensure({k: body.get(k) for k in expected} == expected and body.get("runtime_error") is None, f"body {body}")

    with g.check("reprovision"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{s.conversation.id}/runtime/reprovision")
        ensure(resp.status_code == 200 and {k: resp.json().get(k) for k in expected} == expected, f"{resp.status_code}: {short(resp.text)}")

    with g.check("unknown_404"):
        with rest(server) as client:
            got = client.get(f"/api/conversations/{uuid.uuid4()}/runtime").status_code
            posted = client.post(f"/api/conversations/{uuid.uuid4()}/runtime/reprovision").status_code
        ensure((got, posted) == (404, 404), f"GET {got}, POST {posted}")


@group("runtime_lifecycle", ["credentials_not_served", "release_not_allowed"])
def runtime_lifecycle(g: Group) -> None:
    """`RemoteWorkspace.get_runtime_session_key()` and `release_runtime()` call
    `POST …/runtime/credentials` and `DELETE …/runtime`, which the reference 1.58.2 agent
    server does not serve (404, and 405 on the GET-only `…/runtime`): both methods raise,
    on either server, with the same status."""
    server = start_server(g)
    llm = start_llm(g)
    s = Session(g, server, llm)
    ws = RemoteWorkspace(
        host=server.url, api_key=API_KEY, working_dir=str(server.workspace_dir),
        runtime_conversation_id=str(s.conversation.id),
    )

    def status_of(call) -> int | None:
        try:
            call()
        except httpx.HTTPStatusError as e:
            return e.response.status_code
        return None

    with g.check("credentials_not_served"):
        code = status_of(ws.get_runtime_session_key)
        ensure(code == 404, f"get_runtime_session_key: status {code}")

    with g.check("release_not_allowed"):
        code = status_of(ws.release_runtime)
        ensure(code == 405, f"release_runtime: status {code}")


# --------------------------------------------------------------------------- 8. restart and resume


@group(
    "restart",
    [
        "sigterm_first_run",
        "sigterm_exits",
        "sigterm_restart_ready",
        "sigterm_reattach_events",
        "sigterm_reattach_status",
        "sigterm_continue_to_finish",
        "sigterm_secret_survives",
        "sigkill_first_run",
        "sigkill_restart_ready",
        "sigkill_reattach_events",
        "sigkill_continue_to_finish",
        "midrun_action_started",
        "midrun_restart_ready",
        "midrun_status_error",
        "midrun_restart_notice",
        "midrun_continue_to_finish",
    ],
    budget=480.0,
)
def restart(g: Group) -> None:
    llm = start_llm(g)
    for sig, name in ((signal.SIGTERM, "sigterm"), (signal.SIGKILL, "sigkill")):
        try:
            restart_variant(g, llm, sig, name)
        except Abort as exc:
            # The other variants still run.
            g.abandon(name, str(exc))
    try:
        restart_mid_run(g, llm)
    except Abort as exc:
        g.abandon("midrun", str(exc))


def restart_mid_run(g: Group, llm: ScriptedLLM) -> None:
    """SIGKILL while a tool runs: after the restart the conversation is in
    error with a restart notice for the interrupted action, and a new message
    runs it on."""
    server = start_server(g, "restart-midrun")
    s = Session(g, server, llm, delete_on_close=False)
    llm.script(terminal("sleep 60"))
    with g.check("midrun_action_started", fatal=True):
        s.conversation.send_message("Run something long.")
        s.conversation.run(blocking=False)
        stored = wait_for(
            lambda: [e for e in rest_events(server, s.conversation.id) if e["kind"] == "ActionEvent"],
            30,
            0.3,
            "the ActionEvent",
        )
        action = stored[0]
    time.sleep(0.5)  # into the tool's execution
    server.stop(signal.SIGKILL)
    cid = s.conversation.id
    s.close()

    with g.check("midrun_restart_ready", fatal=True):
        server.start()

    with g.check("midrun_status_error"):
        ensure(rest_info(server, cid).get("execution_status") == "error", f"REST status {rest_info(server, cid).get('execution_status')}")

    with g.check("midrun_restart_notice"):
        kinds = [e["kind"] for e in rest_events(server, cid)]
        notices = [e for e in rest_events(server, cid) if e["kind"] == "AgentErrorEvent"]
        ensure(notices, f"no AgentErrorEvent after the restart; events {kinds}")
        ensure(notices[-1].get("tool_call_id") == action.get("tool_call_id"), "the notice names another tool call")
        ensure(not any(e["kind"] == "ObservationEvent" for e in rest_events(server, cid)), "the interrupted tool has an observation")

    llm.script(say("Recovered after the crash."))
    with g.check("midrun_continue_to_finish"):
        again = Session(g, server, llm, conversation_id=cid, delete_on_close=False)
        ensure(again.status == Status.ERROR, f"client status {again.status}")
        before = llm.request_count()
        again.say_and_run("Carry on.")
        ensure(again.status == Status.FINISHED, f"status {again.status}")
        ensure(llm.request_count() == before + 1, f"{llm.request_count() - before} LLM requests")


def restart_variant(g: Group, llm: ScriptedLLM, sig: int, name: str) -> None:
    server = start_server(g, f"restart-{name}")
    # Not deleted on close: the conversation must outlive this client.
    s = Session(g, server, llm, delete_on_close=False)
    if sig == signal.SIGTERM:
        s.conversation.update_secrets({"MY_TOKEN": "persisted-secret"})
    llm.script(terminal(f"echo before-{name}"), finish("first part done"))
    with g.check(f"{name}_first_run", fatal=True):
        s.say_and_run("Do the first part.")
        ensure(s.status == Status.FINISHED, f"status {s.status}")
    ids = [e.id for e in s.history()]
    cid = s.conversation.id
    s.close()

    took = server.stop(sig, timeout=20)
    if sig == signal.SIGTERM:
        g.expect("sigterm_exits", took is not None, "the server did not exit within 20 s of SIGTERM")

    with g.check(f"{name}_restart_ready", fatal=True):
        server.start()

    with g.check(f"{name}_reattach_events", fatal=True):
        again = Session(g, server, llm, conversation_id=cid, delete_on_close=False)
        got = [e.id for e in again.history()]
        ensure(got[: len(ids)] == ids, f"{len(got)} events after restart, {len(ids)} before")
        ensure(len(got) == len(ids), f"{len(got) - len(ids)} extra events after restart")

    if sig == signal.SIGTERM:
        g.expect("sigterm_reattach_status", again.status == Status.FINISHED, f"status {again.status}")
        llm.script(terminal("echo again=$MY_TOKEN"))
    llm.script(say(f"Resumed after {name}."))
    with g.check(f"{name}_continue_to_finish"):
        before = llm.request_count()
        again.say_and_run("Continue.")
        ensure(again.status == Status.FINISHED, f"status {again.status}")
        ensure(f"before-{name}" in tool_messages(llm.requests[before]), "the LLM did not get the history")
    if sig == signal.SIGTERM:
        outputs = [observation_text(o) for o in again.received(ObservationEvent)]
        secret_ok = any("again=<secret-hidden>" in o for o in outputs)
        g.expect("sigterm_secret_survives", secret_ok, f"outputs after restart {[short(o) for o in outputs]}")


# --------------------------------------------------------------------------- 9. errors


@group(
    "errors",
    [
        "command_bad_key",
        "command_no_key",
        "upload_bad_key",
        "download_bad_key",
        "git_bad_key_raises",
        "conversation_bad_key_raises",
        "unreachable_server_raises",
        "health_needs_no_key",
        "unknown_id_creates",
        "socket_bad_key_is_fatal",
        "socket_unknown_conversation_is_fatal",
    ],
)
def errors(g: Group) -> None:
    server = start_server(g)
    llm = start_llm(g)
    bad = workspace(server, api_key="wrong-key")
    wd = server.workspace_dir

    with g.check("command_bad_key"):
        r = bad.execute_command("echo should-not-run")
        ensure(r.exit_code == -1 and "401" in r.stderr, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")

    with g.check("command_no_key"):
        r = workspace(server, api_key=None).execute_command("echo should-not-run")
        ensure(r.exit_code == -1 and "401" in r.stderr, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")

    with g.check("upload_bad_key"):
        r = bad.file_upload(b"x", wd / "bad-key.txt")
        ensure(not r.success and "401" in (r.error or ""), f"success {r.success}, error {r.error!r}")
        ensure(not (wd / "bad-key.txt").exists(), "the file was written")

    with g.check("download_bad_key"):
        (wd / "exists.txt").write_text("x")
        local = Path(tempfile.mkdtemp(prefix="local-", dir=STATE_ROOT)) / "x"
        r = bad.file_download(wd / "exists.txt", local)
        ensure(not r.success and "401" in (r.error or ""), f"success {r.success}, error {r.error!r}")

    with g.check("git_bad_key_raises"):
        try:
            bad.git_changes(str(wd))
        except httpx.HTTPStatusError as exc:
            ensure(exc.response.status_code == 401, f"status {exc.response.status_code}")
        else:
            raise AssertionError("git_changes with a bad key did not raise")

    with g.check("conversation_bad_key_raises"):
        try:
            Conversation(agent=make_agent(llm), workspace=bad, visualizer=None)
        except httpx.HTTPStatusError as exc:
            ensure(exc.response.status_code == 401, f"status {exc.response.status_code}")
        else:
            raise AssertionError("creating a conversation with a bad key did not raise")

    with g.check("unreachable_server_raises"):
        dead = RemoteWorkspace(host="http://127.0.0.1:9", api_key=API_KEY, working_dir=str(wd))
        try:
            Conversation(agent=make_agent(llm), workspace=dead, visualizer=None)
        except httpx.TransportError:
            pass
        else:
            raise AssertionError("creating a conversation on a closed port did not raise")

    with g.check("health_needs_no_key"):
        ensure(bad.alive, "alive is False with a bad key")
        ensure(isinstance(bad.get_server_info(), dict), "server_info needs a key")

    with g.check("unknown_id_creates"):
        wanted = uuid.uuid4()
        s = Session(g, server, llm, conversation_id=wanted)
        ensure(s.conversation.id == wanted, f"created {s.conversation.id}, asked for {wanted}")
        ensure(rest_info(server, wanted)["id"] in (str(wanted), wanted.hex), "not found by its id")

    def socket_is_fatal(conversation_id: str, api_key: str) -> None:
        client = WebSocketCallbackClient(host=server.url, conversation_id=conversation_id, callback=lambda e: None, api_key=api_key)
        client.start()
        try:
            ready = client.wait_until_ready(timeout=10)
            ensure(not ready, "the socket became ready")
            # A fatal close (4001/4004) stops the client; others make it retry.
            ensure(client._stop.is_set(), "the client keeps reconnecting: the close was not 4001/4004")
        finally:
            client.stop()

    with g.check("socket_bad_key_is_fatal"):
        socket_is_fatal(str(s.conversation.id), "wrong-key")

    with g.check("socket_unknown_conversation_is_fatal"):
        socket_is_fatal(str(uuid.uuid4()), API_KEY)


# --------------------------------------------------------------------------- 9b. runtime-scoped routes


def git_script(repo: Path) -> str:
    """Shell commands making `repo`: a.txt changed, b.txt deleted, c.txt added."""
    return " && ".join(
        [
            f"mkdir -p '{repo}'",
            f"cd '{repo}'",
            "git init -q",
            "git config user.email conformance@example.com",
            "git config user.name Conformance",
            "printf 'one\\n' > a.txt",
            "printf 'keep\\n' > b.txt",
            "git add .",
            "git commit -qm init",
            "printf 'one\\ntwo\\n' > a.txt",
            "rm b.txt",
            "printf 'new\\n' > c.txt",
        ]
    )


@group(
    "runtime_routes",
    [
        "setup",
        "command_in_workspace",
        "command_events_scoped",
        "upload_download",
        "git_changes",
        "git_diff",
        "path_outside_is_error",
        "cwd_outside_is_error",
        "unknown_conversation_404",
    ],
)
def runtime_routes(g: Group) -> None:
    """The SDK's RemoteWorkspace with runtime_conversation_id: commands, files and
    git through /api/conversations/{id}/..., bound to that conversation's workspace."""
    server = start_server(g)
    llm = start_llm(g)
    wd = server.workspace_dir
    outside = server.state_dir / "outside.txt"
    outside.write_text("not yours")

    with g.check("setup", fatal=True):
        s = Session(g, server, llm)
        cid = s.conversation.id
        ws = RemoteWorkspace(host=server.url, api_key=API_KEY, working_dir=str(wd), runtime_conversation_id=cid)
        ensure(ws.api_prefix == f"/api/conversations/{cid}", f"prefix {ws.api_prefix}")

    with g.check("command_in_workspace"):
        r = ws.execute_command("pwd")
        ensure(r.exit_code == 0, f"exit_code {r.exit_code}: {short(r.stderr)}")
        ensure(r.stdout.strip() in (str(wd), os.path.realpath(wd)), f"pwd {r.stdout.strip()!r}")

    with g.check("command_events_scoped"):
        marker = f"runtime-marker-{uuid.uuid4().hex[:8]}"
        r = ws.execute_command(f"echo {marker}")
        ensure(r.exit_code == 0 and marker in r.stdout, f"exit_code {r.exit_code}, stdout {short(r.stdout)}")
        with rest(server) as client:
            scoped = client.get(f"{ws.api_prefix}/bash/bash_events/search", params={"kind__eq": "BashCommand"})
            top = client.get("/api/bash/bash_events/search", params={"kind__eq": "BashCommand"})
        ensure(scoped.status_code == 200 and top.status_code == 200, f"{scoped.status_code} {top.status_code}")
        ensure(any(marker in i["command"] for i in scoped.json()["items"]), "not in the conversation's events")
        ensure(not any(marker in i["command"] for i in top.json()["items"]), "in the server's events")

    with g.check("upload_download"):
        target = wd / "up" / "in.txt"
        r = ws.file_upload(b"scoped bytes", target)
        ensure(r.success, f"upload: {r.error}")
        ensure(target.read_bytes() == b"scoped bytes", "content on disk differs")
        local = Path(tempfile.mkdtemp(prefix="local-", dir=STATE_ROOT)) / "out.txt"
        r = ws.file_download(target, local)
        ensure(r.success, f"download: {r.error}")
        ensure(local.read_bytes() == b"scoped bytes", "downloaded content differs")

    repo = wd / "repo"
    with g.check("git_changes"):
        r = ws.execute_command(git_script(repo))
        ensure(r.exit_code == 0, f"exit_code {r.exit_code}: {short(r.stderr)}")
        got = {Path(c.path).name: c.status for c in ws.git_changes(str(repo))}
        want = {"a.txt": GitChangeStatus.UPDATED, "b.txt": GitChangeStatus.DELETED, "c.txt": GitChangeStatus.ADDED}
        ensure(got == want, f"got {got}")

    with g.check("git_diff"):
        d = ws.git_diff(str(repo / "a.txt"))
        ensure(d.original == "one" and d.modified == "one\ntwo", f"got {d!r}")

    with g.check("path_outside_is_error"):
        local = Path(tempfile.mkdtemp(prefix="local-", dir=STATE_ROOT)) / "stolen.txt"
        r = ws.file_download(outside, local)
        ensure(not r.success and "422" in (r.error or ""), f"download: success {r.success}, error {r.error!r}")
        r = ws.file_upload(b"overwrite", outside)
        ensure(not r.success and "422" in (r.error or ""), f"upload: success {r.success}, error {r.error!r}")
        ensure(outside.read_text() == "not yours", "the file outside was overwritten")
        try:
            ws.git_changes(str(server.state_dir))
        except httpx.HTTPStatusError as exc:
            ensure(exc.response.status_code == 422, f"git status {exc.response.status_code}")
            detail = exc.response.json().get("detail")
            ensure(detail == "path must be inside the conversation workspace", f"detail {detail!r}")
        else:
            raise AssertionError("git_changes outside the workspace did not raise")

    with g.check("cwd_outside_is_error"):
        r = ws.execute_command("echo should-not-run", cwd=str(server.state_dir))
        ensure(r.exit_code == -1 and "422" in r.stderr, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")

    with g.check("unknown_conversation_404"):
        unknown = uuid.uuid4()
        other = RemoteWorkspace(host=server.url, api_key=API_KEY, working_dir=str(wd), runtime_conversation_id=unknown)
        r = other.execute_command("echo should-not-run")
        ensure(r.exit_code == -1 and "404" in r.stderr, f"exit_code {r.exit_code}, stderr {short(r.stderr)}")
        with rest(server) as client:
            reply = client.get(f"/api/conversations/{unknown}/git/changes", params={"path": str(wd)})
        ensure(reply.status_code == 404, f"status {reply.status_code}")
        ensure(reply.json() == {"detail": f"Conversation not found: {unknown}"}, f"body {reply.text}")


# --------------------------------------------------------------------------- 9c. 1.58.2 core behaviour

OBSERVABILITY_HEADERS = ("OTEL_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")


@group(
    "core_158",
    [
        "pause_unknown_404",
        "interrupt_unknown_404",
        "delete_unknown_404",
        "patch_unknown_404",
        "unknown_event_404",
        "condense_without_condenser_409",
        "diff_deleted_file",
        "bash_strips_observability_env",
    ],
)
def core_158(g: Group) -> None:
    """Status codes and bodies of core routes as 1.58.2 answers them."""
    # The headers variables only carry credentials: without an endpoint they enable nothing.
    env = {name: "Authorization=Bearer%20conformance-otel" for name in OBSERVABILITY_HEADERS}
    env["CONFORMANCE_KEPT"] = "kept-value"
    server = start_server(g, env=env)
    llm = start_llm(g)
    client = rest(server)
    g.defer(client.close)
    unknown = uuid.uuid4()

    def not_found(reply: httpx.Response) -> None:
        ensure(reply.status_code == 404, f"status {reply.status_code}: {short(reply.text)}")
        ensure(reply.json() == {"detail": "Not Found"}, f"body {reply.text}")

    with g.check("pause_unknown_404"):
        not_found(client.post(f"/api/conversations/{unknown}/pause"))

    with g.check("interrupt_unknown_404"):
        not_found(client.post(f"/api/conversations/{unknown}/interrupt"))

    with g.check("delete_unknown_404"):
        not_found(client.delete(f"/api/conversations/{unknown}"))

    with g.check("patch_unknown_404"):
        not_found(client.patch(f"/api/conversations/{unknown}", json={"title": "renamed"}))

    s = Session(g, server, llm)
    cid = s.conversation.id

    with g.check("unknown_event_404"):
        not_found(client.get(f"/api/conversations/{cid}/events/{uuid.uuid4()}"))

    with g.check("condense_without_condenser_409"):
        reply = client.post(f"/api/conversations/{cid}/condense")
        ensure(reply.status_code == 409, f"status {reply.status_code}: {short(reply.text)}")
        detail = reply.json().get("detail")
        ensure(detail == "Cannot condense conversation: No condenser configured", f"detail {detail!r}")

    with g.check("diff_deleted_file"):
        ws = workspace(server)
        repo = server.workspace_dir / "repo"
        r = ws.execute_command(git_script(repo))
        ensure(r.exit_code == 0, f"exit_code {r.exit_code}: {short(r.stderr)}")
        reply = client.get("/api/git/diff", params={"path": str(repo / "b.txt")})
        ensure(reply.status_code == 200, f"status {reply.status_code}: {short(reply.text)}")
        ensure(reply.json() == {"modified": "", "original": "keep"}, f"body {reply.text}")

    with g.check("bash_strips_observability_env"):
        reply = client.post("/api/bash/execute_bash_command", json={"command": "env"})
        ensure(reply.status_code == 200, f"status {reply.status_code}: {short(reply.text)}")
        names = {line.split("=", 1)[0] for line in (reply.json().get("stdout") or "").splitlines()}
        ensure("CONFORMANCE_KEPT" in names, "the server's other variables are missing: the check proves nothing")
        leaked = sorted(names.intersection(OBSERVABILITY_HEADERS))
        ensure(not leaked, f"leaked {leaked}")



# --------------------------------------------------------------------------- skills


SKILL_INFO_KEYS = {
    "name",
    "type",
    "content",
    "triggers",
    "source",
    "description",
    "is_agentskills_format",
    "disable_model_invocation",
}


def write_skill_files(server: ServerProcess) -> None:
    """A project with a root AGENTS.md, one in a subdirectory (a path rule), a keyword skill,
    an AgentSkills skill, a legacy microagent and a README (not a skill); and one user skill."""
    files = {
        server.workspace_dir / "AGENTS.md": "Project rule: run make check (AGENTS-7781).\n",
        server.workspace_dir / ".openhands/skills/zebra.md": (
            "---\ntriggers:\n- zebra\ndescription: Facts about zebras.\n---\n\nZebras have stripes (ZEBRA-4410).\n"
        ),
        server.workspace_dir / ".openhands/skills/README.md": "Not a skill.\n",
        server.workspace_dir / "sub/AGENTS.md": "Sub-directory rule (SUBRULE-3310).\n",
        server.workspace_dir / ".openhands/skills/pdf-tools/SKILL.md": (
            "---\nname: pdf-tools\ndescription: Read PDF files.\n---\nUse pdftotext.\n"
        ),
        server.workspace_dir / ".openhands/microagents/legacy.md": "---\ntriggers: [okapi]\n---\nOkapis are shy.\n",
        server.state_dir / "persistence/skills/mine.md": "A user skill (USER-5521).\n",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@group(
    "skills",
    [
        "load_from_agent_server",
        "skill_types_and_triggers",
        "skill_info_shape",
        "sources_counted",
        "context_ready",
        "project_dir_missing_is_empty",
        "bad_body_422",
        "repo_skill_in_system_prompt",
        "keyword_activates_skill",
        "activated_once",
        "path_rule_on_file_touch",
    ],
)
def skills_group(g: Group) -> None:
    """`POST /api/skills` through RemoteWorkspace.load_skills_from_agent_server(), then a
    conversation whose agent context carries the loaded skills."""
    server = start_server(g)
    write_skill_files(server)
    llm = start_llm(g)
    client = rest(server)
    g.defer(client.close)
    ws = workspace(server)
    skills, context = [], None

    with g.check("load_from_agent_server", fatal=True):
        # With no network the public skills cannot be fetched: the reference logs that and goes
        # on with the other sources, and so does our server.
        skills, context = ws.load_skills_from_agent_server()
        names = sorted(s.name for s in skills)
        ensure(names == ["agents", "agents:sub", "legacy", "mine", "pdf-tools", "zebra"], f"skills {names}")

    with g.check("skill_types_and_triggers"):
        by_name = {s.name: s for s in skills}
        zebra = by_name["zebra"]
        ensure(zebra.trigger is not None and list(zebra.trigger.keywords) == ["zebra"], f"zebra trigger {zebra.trigger}")
        ensure(zebra.content == "Zebras have stripes (ZEBRA-4410).", f"zebra content {zebra.content!r}")
        ensure(zebra.description == "Facts about zebras.", f"zebra description {zebra.description!r}")
        ensure(by_name["agents"].trigger is None, "AGENTS.md is triggered")
        ensure("AGENTS-7781" in by_name["agents"].content, "AGENTS.md content missing")
        ensure(by_name["pdf-tools"].is_agentskills_format, "SKILL.md not in AgentSkills format")
        ensure(by_name["mine"].content.strip() == "A user skill (USER-5521).", f"user skill {by_name['mine'].content!r}")
        expected_source = str(server.workspace_dir / ".openhands/skills/zebra.md")
        ensure(zebra.source == expected_source, f"source {zebra.source!r}, expected {expected_source!r}")

    body = {}
    with g.check("skill_info_shape"):
        reply = client.post(
            "/api/skills",
            json={"load_public": False, "load_user": True, "load_project": True, "load_org": False,
                  "project_dir": str(server.workspace_dir)},
        )
        ensure(reply.status_code == 200, f"status {reply.status_code}: {short(reply.text)}")
        body = reply.json()
        ensure(set(body) == {"skills", "sources"}, f"keys {sorted(body)}")
        for item in body["skills"]:
            ensure(set(item) == SKILL_INFO_KEYS, f"{item.get('name')}: keys {sorted(item)}")
        types = {item["name"]: item["type"] for item in body["skills"]}
        expected = {"agents": "repo", "mine": "repo", "zebra": "knowledge", "legacy": "knowledge",
                    "pdf-tools": "agentskills", "agents:sub": "knowledge"}
        ensure(types == expected, f"types {types}")
        # User skills come first (lower precedence), then the project's.
        ensure(body["skills"][0]["name"] == "mine", f"order {[i['name'] for i in body['skills']]}")

    with g.check("sources_counted"):
        sources = body.get("sources", {})
        ensure(sources.get("project") == 5 and sources.get("sdk_base") == 1, f"sources {sources}")
        rule = next((i for i in body.get("skills", []) if i["name"] == "agents:sub"), {})
        ensure(rule.get("triggers") == [] and rule.get("disable_model_invocation") is True, f"rule {rule}")
        ensure(sources.get("sandbox") == 0 and sources.get("org") == 0, f"sources {sources}")

    with g.check("context_ready"):
        ensure(context is not None and len(context.skills) == 6, f"context {context}")
        ensure(context.load_public_skills is False, "the context still asks for public skills")

    with g.check("project_dir_missing_is_empty"):
        reply = client.post(
            "/api/skills",
            json={"load_public": False, "load_user": False, "project_dir": str(server.workspace_dir / "missing"),
                  "sandbox_config": {"exposed_urls": [{"name": "WORKER_1", "url": "http://w1", "port": 8011}]}},
        )
        ensure(reply.status_code == 200, f"status {reply.status_code}: {short(reply.text)}")
        names = [item["name"] for item in reply.json()["skills"]]
        ensure(names == ["work_hosts"], f"skills {names}")

    with g.check("bad_body_422"):
        for bad in ({"load_user": [1]}, {"project_dir": 5}, {"sandbox_config": {"exposed_urls": [{"name": "x"}]}}):
            reply = client.post("/api/skills", json=bad)
            ensure(reply.status_code == 422, f"{bad}: status {reply.status_code}: {short(reply.text)}")
            ensure(isinstance(reply.json().get("detail"), list), f"{bad}: body {short(reply.text)}")

    agent = make_agent(llm).model_copy(update={"agent_context": context})
    s = Session(g, server, llm, agent=agent)
    llm.script(finish("one"))
    s.say_and_run("Tell me about the zebra.")
    llm.script(finish("two"))
    s.say_and_run("And the zebra again?")

    with g.check("repo_skill_in_system_prompt"):
        first = llm.requests[0]
        system = [m for m in first["messages"] if m.get("role") == "system"]
        text = str(system)
        ensure("AGENTS-7781" in text and "USER-5521" in text, "repo skills missing from the system prompt")
        ensure("<REPO_CONTEXT>" in text, "no <REPO_CONTEXT> section")
        ensure("ZEBRA-4410" not in text, "a triggered skill's content is in the system prompt")
        ensure("<name>zebra</name>" in text, "the triggered skill is not listed")

    with g.check("keyword_activates_skill"):
        ensure("ZEBRA-4410" in user_texts(llm.requests[0]), "the skill's content did not reach the LLM")
        users = [e for e in rest_events(server, s.conversation.id)
                 if e.get("kind") == "MessageEvent" and e.get("source") == "user"]
        ensure(users[0].get("activated_skills") == ["zebra"], f"activated {users[0].get('activated_skills')}")
        extended = users[0].get("extended_content") or []
        ensure(len(extended) == 1 and "ZEBRA-4410" in extended[0].get("text", ""), f"extended {short(str(extended))}")

    with g.check("activated_once"):
        users = [e for e in rest_events(server, s.conversation.id)
                 if e.get("kind") == "MessageEvent" and e.get("source") == "user"]
        ensure(users[1].get("activated_skills") == [], f"second activated {users[1].get('activated_skills')}")
        ensure(user_texts(llm.requests[-1]).count("ZEBRA-4410") == 1, "the skill was added twice")
        state = rest_info(server, s.conversation.id)
        ensure(state.get("activated_knowledge_skills") == ["zebra"], f"state {state.get('activated_knowledge_skills')}")

    with g.check("path_rule_on_file_touch"):
        # The client rebuilds the rule from the listing as a plain skill (it keeps no path
        # trigger), so this conversation loads the project's skills itself.
        rules_agent = make_agent(llm).model_copy(
            update={"agent_context": AgentContext(load_project_skills=True, current_datetime=None)}
        )
        r = Session(g, server, llm, agent=rules_agent)
        top = str(server.workspace_dir / "top.txt")
        inside = str(server.workspace_dir / "sub" / "new.txt")
        llm.script(
            call("file_editor", command="create", path=top, file_text="x", security_risk="LOW", summary="top"),
            call("file_editor", command="create", path=inside, file_text="y", security_risk="LOW", summary="sub"),
            finish("written"),
        )
        start = len(llm.requests)
        r.say_and_run("Write the two files.")
        tools = [m for m in llm.requests[-1]["messages"] if m.get("role") == "tool"]
        texts = [str(m.get("content")) for m in tools]
        ensure(len(texts) >= 2, f"{len(texts)} tool results in the last request ({len(llm.requests) - start} requests)")
        ensure("SUBRULE-3310" not in texts[0], "the rule fired for a file outside its directory")
        ensure("SUBRULE-3310" in texts[1], "the rule did not reach the LLM with the result that touched sub/")
        ensure(texts[1].count("SUBRULE-3310") == 1, "the rule was added more than once")

# --------------------------------------------------------------------------- 9b. tool presets

# The golden `tools` arrays: `golden_tools` and `scrub_descriptions` of section 4b.


def check_golden_tools(llm: ScriptedLLM, preset: str) -> None:
    expected = golden_tools(preset)
    ensure(llm.requests, "no LLM request")
    for i, request in enumerate(llm.requests):
        got = scrub_descriptions(request.get("tools"))
        if got != expected:
            names = [t.get("function", {}).get("name") for t in got or []]
            raise AssertionError(f"request {i}: tools differ from tools_{preset}.json (got {names})")


def observations_of(s: Session, tool: str) -> list:
    return [o for o in s.received(ObservationEvent) if o.tool_name == tool]


@group(
    "preset_gpt5",
    [
        "create",
        "runs_to_finished",
        "apply_patch_added",
        "apply_patch_updated",
        "bad_patch_is_error",
        "file_on_disk",
        "terminal_saw_file",
        "task_tracker_planned",
        "tools_equal_reference",
    ],
)
def preset_gpt5(g: Group) -> None:
    """An agent from the SDK's `get_gpt5_agent(llm, cli_mode=True)`: terminal, apply_patch,
    task_tracker + finish, think."""
    server = start_server(g)
    llm = start_llm(g)
    with g.check("create", fatal=True):
        s = Session(g, server, llm, agent=get_gpt5_agent(preset_llm(llm), cli_mode=True))
        ensure(s.status == Status.IDLE, f"status {s.status}")

    llm.script(
        call("apply_patch", patch="*** Begin Patch\n*** Add File: notes/hello.txt\n+hello\n+world\n*** End Patch", security_risk="LOW"),
        call("apply_patch", patch="*** Begin Patch\n*** Update File: notes/hello.txt\n hello\n-world\n+there\n*** End Patch"),
        call("apply_patch", patch="*** Begin Patch\n*** Update File: notes/hello.txt\n-nowhere\n*** End Patch"),
        terminal("cat notes/hello.txt"),
        call("task_tracker", command="plan", task_list=[{"title": "Greet", "status": "done"}]),
        finish("greeting written"),
    )
    with g.check("runs_to_finished", fatal=True):
        s.say_and_run("Write the greeting file.")
        ensure(s.status == Status.FINISHED, f"status {s.status}")
        names = [o.tool_name for o in s.received(ObservationEvent)]
        expected = ["apply_patch", "apply_patch", "apply_patch", "terminal", "task_tracker", "finish"]
        ensure(names == expected, f"observations {names}")

    patches = observations_of(s, "apply_patch")
    with g.check("apply_patch_added"):
        o = patches[0].observation
        ensure(type(o).__name__ == "ApplyPatchObservation", f"observation {type(o).__name__}")
        ensure(not o.is_error and o.message == "Done!" and o.fuzz == 0, f"{short(observation_text(patches[0]))}")
        change = o.commit.changes.get("notes/hello.txt")
        ensure(change is not None and change.type.value == "add", f"commit {o.commit}")
        ensure(change.new_content == "hello\nworld", f"new_content {change.new_content!r}")

    with g.check("apply_patch_updated"):
        o = patches[1].observation
        change = o.commit.changes.get("notes/hello.txt")
        ensure(not o.is_error and change is not None and change.type.value == "update", f"commit {o.commit}")
        ensure((change.old_content, change.new_content, change.move_path) == ("hello\nworld", "hello\nthere", ""), f"change {change}")

    with g.check("bad_patch_is_error"):
        o = patches[2].observation
        ensure(o.is_error and o.commit is None, f"is_error {o.is_error}, commit {o.commit}")
        text = observation_text(patches[2])
        ensure("Invalid Context 0:\nnowhere" in text, f"text {short(text)}")
        ensure("Invalid Context 0:\nnowhere" in tool_messages(llm.requests[3]), "the model did not see the reason")

    with g.check("file_on_disk"):
        r = workspace(server).execute_command("cat notes/hello.txt", cwd=str(server.workspace_dir))
        ensure(r.exit_code == 0 and r.stdout == "hello\nthere", f"exit {r.exit_code}, stdout {r.stdout!r}")

    with g.check("terminal_saw_file"):
        text = observation_text(observations_of(s, "terminal")[0])
        ensure("hello\nthere" in text, f"terminal {short(text)}")

    with g.check("task_tracker_planned"):
        o = observations_of(s, "task_tracker")[0].observation
        ensure(not o.is_error and [t.title for t in o.task_list] == ["Greet"], f"task_list {o.task_list}")

    with g.check("tools_equal_reference"):
        check_golden_tools(llm, "gpt5")


@group(
    "preset_planning",
    [
        "create",
        "runs_to_finished",
        "glob_found",
        "grep_found",
        "plan_viewed",
        "plan_edited",
        "other_edit_refused",
        "planning_prompt",
        "tools_equal_reference",
    ],
)
def preset_planning(g: Group) -> None:
    """An agent from the SDK's `get_planning_agent(llm)`: glob, grep, planning_file_editor +
    finish, think, with the planning system prompt."""
    server = start_server(g)
    llm = start_llm(g)
    root = os.path.realpath(server.workspace_dir)
    ws = workspace(server)
    r = ws.execute_command(
        "mkdir -p src && printf 'def handler():\\n    pass\\n' > src/app.py && printf 'notes\\n' > README.md",
        cwd=root,
    )
    ensure(r.exit_code == 0, f"setup: {short(r.stderr)}")
    plan = f"{root}/.agents_tmp/PLAN.md"
    app = f"{root}/src/app.py"
    with g.check("create", fatal=True):
        s = Session(g, server, llm, agent=get_planning_agent(preset_llm(llm)))
        ensure(s.status == Status.IDLE, f"status {s.status}")

    llm.script(
        call("glob", pattern="**/*.py", summary="find python files"),
        call("grep", pattern="DEF HANDLER", include="*.py"),
        call("planning_file_editor", command="view", path=plan),
        call("planning_file_editor", command="str_replace", path=plan, old_str="# 1. OBJECTIVE\n", new_str="# 1. OBJECTIVE\nAdd logging to the handler.\n"),
        call("planning_file_editor", command="create", path=f"{root}/src/new.py", file_text="x = 1\n"),
        finish("plan written"),
    )
    with g.check("runs_to_finished", fatal=True):
        s.say_and_run("Plan adding logging to the handler.")
        ensure(s.status == Status.FINISHED, f"status {s.status}")
        names = [o.tool_name for o in s.received(ObservationEvent)]
        expected = ["glob", "grep", "planning_file_editor", "planning_file_editor", "planning_file_editor", "finish"]
        ensure(names == expected, f"observations {names}")

    with g.check("glob_found"):
        o = observations_of(s, "glob")[0].observation
        ensure(not o.is_error and o.files == [app], f"files {o.files}")
        ensure(o.search_path == root and not o.truncated, f"search_path {o.search_path}")
        text = observation_text(observations_of(s, "glob")[0])
        ensure(text == f"Found 1 file(s) matching pattern '**/*.py' in '{root}':\n{app}", f"text {short(text)}")

    with g.check("grep_found"):
        o = observations_of(s, "grep")[0].observation
        ensure(not o.is_error and o.matches == [app], f"matches {o.matches}")
        ensure(o.include_pattern == "*.py", f"include_pattern {o.include_pattern}")
        text = observation_text(observations_of(s, "grep")[0])
        expected = f"Found 1 file(s) containing pattern 'DEF HANDLER' in '{root}' (filtered by '*.py'):\n{app}"
        ensure(text == expected, f"text {short(text)}")

    editor = observations_of(s, "planning_file_editor")
    with g.check("plan_viewed"):
        o = editor[0].observation
        ensure(type(o).__name__ == "PlanningFileEditorObservation", f"observation {type(o).__name__}")
        text = observation_text(editor[0])
        ensure("# 1. OBJECTIVE" in text and "# 5. TESTING AND VALIDATION" in text, f"view {short(text)}")

    with g.check("plan_edited"):
        ensure(not editor[1].observation.is_error, short(observation_text(editor[1])))
        r = ws.execute_command(f"head -2 {plan}", cwd=root)
        ensure(r.stdout.rstrip("\n") == "# 1. OBJECTIVE\nAdd logging to the handler.", f"plan {r.stdout!r}")

    with g.check("other_edit_refused"):
        o = editor[2].observation
        text = observation_text(editor[2])
        expected = (
            f"Operation 'create' is not allowed on file '{root}/src/new.py'. "
            f"Only the following files can be edited: ['{plan}']"
        )
        ensure(o.is_error and expected in text, f"text {short(text)}")
        r = ws.execute_command("test -e src/new.py", cwd=root)
        ensure(r.exit_code == 1, "the refused file was written")

    with g.check("planning_prompt"):
        system = llm.requests[0]["messages"][0]
        content = system.get("content")
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        ensure(f"<PLAN_STRUCTURE>\n{format_plan_structure()}\n</PLAN_STRUCTURE>" in text, "no plan structure in the system prompt")
        ensure("<PLANNING_WORKFLOW>" in text, "no planning workflow section")

    with g.check("tools_equal_reference"):
        check_golden_tools(llm, "planning")


# --------------------------------------------------------------------------- plugins


def write_marketplace(root: Path) -> None:
    """A local marketplace `confmk` with the plugin `fmt`: a triggered skill and a command."""
    files = {
        ".plugin/marketplace.json": (
            '{"name": "confmk", "owner": {"name": "conformance"}, "plugins": ['
            '{"name": "fmt", "source": "./plugins/fmt"}]}'
        ),
        "plugins/fmt/.plugin/plugin.json": '{"name": "fmt", "version": "0.3.0"}',
        "plugins/fmt/skills/release.md": "---\ntriggers:\n- release\n---\nRelease rule (RELEASE-3391).\n",
        "plugins/fmt/commands/now.md": "---\ndescription: Tell the time\n---\nAnswer in UTC (NOW-6620).\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@group(
    "load_plugin",
    [
        "load_plugin_ok",
        "skills_in_agent_context",
        "command_reaches_llm",
        "unknown_plugin_404",
        "unknown_marketplace_404",
        "malformed_ref_400",
        "missing_ref_422",
        "unknown_conversation_404",
        "unreachable_github_400",
    ],
)
def load_plugin_group(g: Group) -> None:
    """RemoteConversation.load_plugin() with a marketplace registered in the agent context
    (a local directory both servers can read), then a turn that uses a plugin command."""
    from openhands.sdk.context import AgentContext
    from openhands.sdk.marketplace import MarketplaceRegistration

    server = start_server(g)
    llm = start_llm(g)
    market = Path(tempfile.mkdtemp(prefix="marketplace-", dir=STATE_ROOT))
    write_marketplace(market)
    context = AgentContext(registered_marketplaces=[MarketplaceRegistration(name="confmk", source=str(market))])
    agent = make_agent(llm).model_copy(update={"agent_context": context})
    s = Session(g, server, llm, agent=agent)
    cid = s.conversation.id

    with g.check("load_plugin_ok", fatal=True):
        s.conversation.load_plugin("fmt@confmk")

    with g.check("skills_in_agent_context"):
        # What the client sees: the conversation state's agent (the reference's REST
        # detail keeps listing the agent as it was created, ours shows the new context).
        # The client reads its cached state, which the state-update event on the socket
        # refreshes; `load_plugin()` returns without waiting for it, so wait for the event.
        def loaded_context():
            ctx = s.conversation.state.agent.agent_context
            return ctx if ctx is not None and len(ctx.skills) >= 2 else None

        try:
            ctx = wait_for(loaded_context, 10, 0.05, "the plugin's skills in the client's state")
        except TimeoutError:
            ctx = s.conversation.state.agent.agent_context
        ensure(ctx is not None, "no agent context")
        names = [skill.name for skill in ctx.skills]
        ensure(names == ["release", "fmt:now"], f"skills {names}")
        command = ctx.skills[1]
        ensure(list(command.trigger.keywords) == ["/fmt:now"], f"trigger {command.trigger}")
        ensure("NOW-6620" in command.content, f"content {command.content!r}")
        ensure(command.description == "Tell the time", f"description {command.description!r}")
        ensure([r.name for r in ctx.registered_marketplaces] == ["confmk"], f"registered {ctx.registered_marketplaces}")

    with g.check("command_reaches_llm"):
        llm.script(finish("done"))
        s.say_and_run("Please /fmt:now for Paris.")
        text = user_texts(llm.requests[-1])
        ensure("NOW-6620" in text, "the command's skill did not reach the LLM")
        ensure("RELEASE-3391" not in text, "an untriggered skill reached the LLM")

    def status_of(call) -> int | None:
        try:
            call()
        except httpx.HTTPStatusError as exc:
            return exc.response.status_code
        return 200

    with g.check("unknown_plugin_404"):
        code = status_of(lambda: s.conversation.load_plugin("nope@confmk"))
        ensure(code == 404, f"status {code}")
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{cid}/load_plugin", json={"plugin_ref": "nope"})
        ensure(resp.status_code == 404, f"status {resp.status_code}")
        ensure(resp.json() == {"detail": "Plugin 'nope' not found in any registered marketplace"}, short(resp.text))

    with g.check("unknown_marketplace_404"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{cid}/load_plugin", json={"plugin_ref": "fmt@elsewhere"})
        ensure(resp.status_code == 404, f"status {resp.status_code}")
        ensure(resp.json() == {"detail": "Marketplace 'elsewhere' is not registered"}, short(resp.text))

    with g.check("malformed_ref_400"):
        with rest(server) as client:
            for bad in ("fmt@", "@confmk", ""):
                resp = client.post(f"/api/conversations/{cid}/load_plugin", json={"plugin_ref": bad})
                ensure(resp.status_code == 400, f"{bad!r}: status {resp.status_code}")
                ensure(isinstance(resp.json().get("detail"), str), f"{bad!r}: {short(resp.text)}")

    with g.check("missing_ref_422"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{cid}/load_plugin", json={})
        ensure(resp.status_code == 422, f"status {resp.status_code}")
        ensure(resp.json()["detail"][0]["loc"] == ["body", "plugin_ref"], short(resp.text))

    with g.check("unknown_conversation_404"):
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{uuid.uuid4()}/load_plugin", json={"plugin_ref": "fmt@confmk"})
        ensure(resp.status_code == 404, f"status {resp.status_code}")

    with g.check("unreachable_github_400"):
        # This machine has no route to GitHub (and the repository does not exist anyway).
        source = "github:openhands-rs-conformance/no-such-marketplace"
        gh = AgentContext(registered_marketplaces=[MarketplaceRegistration(name="gh", source=source)])
        other = Session(g, server, llm, agent=make_agent(llm).model_copy(update={"agent_context": gh}))
        code = status_of(lambda: other.conversation.load_plugin("fmt@gh"))
        ensure(code == 400, f"status {code}")
        with rest(server) as client:
            resp = client.post(f"/api/conversations/{other.conversation.id}/load_plugin", json={"plugin_ref": "fmt@gh"})
        ensure(resp.status_code == 400, f"status {resp.status_code}")
        detail = resp.json().get("detail", "")
        ensure(source in detail and "Failed to fetch" in detail, f"detail {detail!r}")


# --------------------------------------------------------------------------- 10. runtime API


def runtime_api_applies() -> str | None:
    if LABEL == "python":
        return (
            "the runtime API server under test is ours whatever --server says, and the SDK has "
            "no runtime API server of its own to hold these checks against"
        )
    return None


def runtime_api() -> httpx.Client:
    """The runtime API over plain HTTP, for looking at what APIRemoteWorkspace does not show."""
    return httpx.Client(base_url=RUNTIME_API_URL, headers={"X-API-Key": RUNTIME_API_KEY}, timeout=30)


def runtime_session(session_id: str) -> dict | None:
    """`GET /sessions/{id}`: the session's runtime, or None on 404."""
    with runtime_api() as client:
        resp = client.get(f"/sessions/{session_id}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()


def live_sessions() -> list[str]:
    """The session ids `GET /list` names."""
    with runtime_api() as client:
        resp = client.get("/list")
    resp.raise_for_status()
    return [r["session_id"] for r in resp.json()["runtimes"]]


def stop_live_runtimes() -> None:
    """The group's safety net: stop whatever the server still runs (it is this suite's alone),
    so that a failed check leaves no sandbox behind."""
    with runtime_api() as client:
        resp = client.get("/list")
        resp.raise_for_status()
        runtimes = resp.json()["runtimes"]
        for runtime in runtimes:
            client.post("/stop", json={"runtime_id": runtime["runtime_id"]}).raise_for_status()
    if runtimes:
        print(f"     (stopped {len(runtimes)} runtime(s) the checks left running)", flush=True)


def api_workspace(**kwargs) -> APIRemoteWorkspace:
    """The SDK's APIRemoteWorkspace on the runtime API under test. Its defaults stay
    (runtime_class sysbox-runc, which this engine lacks, among them) except the pull
    policy: there is no registry to pull from."""
    options = {
        "runtime_api_url": RUNTIME_API_URL,
        "runtime_api_key": RUNTIME_API_KEY,
        "server_image": RUNTIME_API_IMAGE,
        "image_pull_policy": "Never",
    }
    options.update(kwargs)
    return APIRemoteWorkspace(**options)


def timed(g: Group, what: str, step):
    """Run `step()` and print how long it took."""
    started = time.monotonic()
    value = step()
    g.timing(what, time.monotonic() - started)
    return value


@group(
    "runtime_api",
    [
        "provision",
        "session_running",
        "command_user",
        "forwarded_env",
        "session_key_hidden",
        "file_round_trip",
        "conversation_finishes",
        "conversation_observation",
        "keep_alive_cleanup_leaves_running",
        "reattach_same_runtime",
        "reattach_same_sandbox",
        "pause_reported",
        "resume_works",
        "resume_needs_session_key",
        "cleanup_stops",
        "stopped_unreachable",
        "bad_api_key_raises",
        "bad_api_key_starts_nothing",
    ],
    budget=420.0,
    applies=runtime_api_applies,
)
def runtime_api_group(g: Group) -> None:
    if RUNTIME_API_UNAVAILABLE:
        raise Abort(f"no runtime API server: {RUNTIME_API_UNAVAILABLE}")
    if not (RUNTIME_API_URL and RUNTIME_API_KEY):
        raise Abort("OH_CONFORMANCE_RUNTIME_API_URL and OH_CONFORMANCE_RUNTIME_API_KEY are not set")
    g.defer(stop_live_runtimes)
    # With the sandboxes on the host network, the agent inside reaches this loopback LLM.
    llm = start_llm(g)
    forwarded = f"forwarded-{uuid.uuid4().hex[:12]}"
    os.environ["OH_CONFORMANCE_FORWARDED"] = forwarded
    local = Path(tempfile.mkdtemp(prefix="local-", dir=STATE_ROOT))

    with g.check("provision", fatal=True):
        ws = timed(g, "provision", lambda: api_workspace(forward_env=["OH_CONFORMANCE_FORWARDED"], keep_alive=True))
        ensure(ws.runtime_class == "sysbox-runc", f"the SDK's default runtime_class is now {ws.runtime_class!r}")
        ensure(ws.host.startswith("http://") and ws.api_key, f"host {ws.host!r}, session key set: {bool(ws.api_key)}")
        ensure(ws.alive, f"{ws.host}/health does not answer")
    session_id = ws.session_id
    # APIRemoteWorkspace keeps the runtime id to itself; reattaching must find the same one.
    runtime_id, url = ws._runtime_id, ws.host

    with g.check("session_running"):
        info = runtime_session(session_id)
        ensure(info is not None, f"GET /sessions/{session_id}: 404")
        ensure((info["status"], info["pod_status"]) == ("running", "ready"), f"status {info['status']}, pod_status {info['pod_status']}")
        ensure(info["runtime_id"] == runtime_id and info["url"].rstrip("/") == url, f"runtime {short(info)}")
        ensure(session_id in live_sessions(), "GET /list does not name the session")

    with g.check("command_user"):
        r = ws.execute_command("id -u")
        ensure(r.exit_code == 0 and r.stdout == "10001\n", f"exit_code {r.exit_code}, stdout {r.stdout!r}, stderr {short(r.stderr)}")

    with g.check("forwarded_env"):
        r = ws.execute_command('echo "[${OH_CONFORMANCE_FORWARDED-unset}]"')
        ensure(r.stdout == f"[{forwarded}]\n", f"stdout {r.stdout!r}")

    with g.check("session_key_hidden"):
        r = ws.execute_command("env")
        ensure(r.exit_code == 0 and "PATH=" in r.stdout, f"env printed {short(r.stdout)}")
        ensure(ws.api_key not in r.stdout, "the command environment holds the sandbox's session API key")

    data = os.urandom(256 * 1024) + "ünïcødé ✓".encode()
    remote = f"{ws.working_dir}/runtime-api/round-trip.bin"
    with g.check("file_round_trip"):
        (local / "up.bin").write_bytes(data)
        r = ws.file_upload(local / "up.bin", remote)
        ensure(r.success and r.file_size == len(data), f"upload: success {r.success}, size {r.file_size}, error {r.error}")
        c = ws.execute_command(f"sha256sum '{remote}'")
        ensure(c.stdout.split()[:1] == [hashlib.sha256(data).hexdigest()], f"sandbox-side sha256 {c.stdout!r}")
        d = ws.file_download(remote, local / "down.bin")
        ensure(d.success and (local / "down.bin").read_bytes() == data, f"download: success {d.success}, error {d.error}")

    llm.script(terminal("echo sandbox-$(id -u)-$((6*7))"), finish("done in the sandbox"))
    session: Session | None = None
    with g.check("conversation_finishes"):
        session = Session(g, None, llm, ws=ws)
        timed(g, "conversation", lambda: session.say_and_run("Run a command in the sandbox."))
        ensure(session.status == Status.FINISHED, f"status {session.status}")

    with g.check("conversation_observation"):
        ensure(session is not None, "no conversation")
        outputs = [observation_text(o) for o in session.received(ObservationEvent) if o.tool_name == "terminal"]
        ensure(len(outputs) == 1 and "sandbox-10001-42" in outputs[0], f"terminal observations {[short(o) for o in outputs]}")
        ensure(len(llm.requests) >= 2 and "sandbox-10001-42" in tool_messages(llm.requests[1]), "the LLM did not get the output")
    if session is not None:
        session.close()

    with g.check("keep_alive_cleanup_leaves_running", fatal=True):
        ws.cleanup()
        info = runtime_session(session_id)
        ensure(info is not None and info["status"] == "running", f"after cleanup: {short(info)}")
        ensure(http_status(f"{url}/health") == 200, "the agent server stopped answering /health")

    with g.check("reattach_same_runtime", fatal=True):
        again = timed(g, "reattach", lambda: api_workspace(session_id=session_id))
        ensure(again._runtime_id == runtime_id, f"runtime {again._runtime_id}, first {runtime_id}")
        ensure(again.host == url, f"url {again.host}, first {url}")

    with g.check("reattach_same_sandbox"):
        c = again.execute_command(f"sha256sum '{remote}'")
        ensure(c.stdout.split()[:1] == [hashlib.sha256(data).hexdigest()], f"the uploaded file: {c.stdout!r} {short(c.stderr)}")

    with g.check("pause_reported", fatal=True):
        timed(g, "pause", again.pause)
        info = runtime_session(session_id)
        ensure(info is not None and info["status"] == "paused", f"after pause: {short(info)}")

    with g.check("resume_works", fatal=True):
        timed(g, "resume", again.resume)
        info = runtime_session(session_id)
        ensure(info is not None and (info["status"], info["pod_status"]) == ("running", "ready"), f"after resume: {short(info)}")
        ensure(info["url"].rstrip("/") == again.host, f"url {info['url']}, the workspace uses {again.host}")
        r = again.execute_command("echo resumed")
        ensure(r.exit_code == 0 and r.stdout == "resumed\n", f"exit_code {r.exit_code}, stdout {r.stdout!r}, stderr {short(r.stderr)}")

    with g.check("resume_needs_session_key"):
        for key in (None, "wrong-session-key"):
            r = RemoteWorkspace(host=again.host, api_key=key, working_dir=again.working_dir).execute_command("echo should-not-run")
            ensure(r.exit_code == -1 and "401" in r.stderr, f"key {key!r}: exit_code {r.exit_code}, stderr {short(r.stderr)}")

    with g.check("cleanup_stops"):
        again.cleanup()
        info = runtime_session(session_id)
        ensure(info is None or info["status"] == "stopped", f"after cleanup: {short(info)}")
        ensure(session_id not in live_sessions(), "GET /list still names the session")

    with g.check("stopped_unreachable"):
        status = http_status(f"{url}/health")
        ensure(status is None, f"{url}/health answered {status} after the stop")

    stranger = f"agent-server-{uuid.uuid4()}"
    with g.check("bad_api_key_raises"):
        try:
            api_workspace(runtime_api_key="wrong-runtime-key", session_id=stranger)
        except httpx.HTTPStatusError as exc:
            ensure(exc.response.status_code == 401, f"status {exc.response.status_code}")
        else:
            raise AssertionError("APIRemoteWorkspace with a wrong runtime_api_key did not raise")

    with g.check("bad_api_key_starts_nothing"):
        ensure(runtime_session(stranger) is None, "the runtime API knows the session")



def cloud_api(key: str = CLOUD_API_KEY) -> httpx.Client:
    """The Cloud API as a user, over plain HTTP."""
    return httpx.Client(base_url=CLOUD_API_URL, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def cloud_sandbox(sandbox_id: str, key: str = CLOUD_API_KEY) -> dict | None:
    """`GET /api/v1/sandboxes?id=…`: the sandbox as `key`'s user sees it (None: not at all)."""
    with cloud_api(key) as client:
        resp = client.get("/api/v1/sandboxes", params={"id": sandbox_id})
    resp.raise_for_status()
    found = resp.json()
    ensure(isinstance(found, list) and len(found) == 1, f"batch get answered {short(found)}")
    return found[0]


def delete_own_sandboxes() -> None:
    """The group's safety net: delete whatever the user still has."""
    with cloud_api() as client:
        items = client.get("/api/v1/sandboxes/search").json().get("items", [])
        for item in items:
            client.delete(f"/api/v1/sandboxes/{item['id']}", params={"sandbox_id": item["id"]})
    if items:
        print(f"     (deleted {len(items)} sandbox(es) the checks left)", flush=True)


def cloud_workspace(**kwargs) -> OpenHandsCloudWorkspace:
    """The SDK's OpenHandsCloudWorkspace on the Cloud API under test."""
    options = {
        "cloud_api_url": CLOUD_API_URL,
        "cloud_api_key": CLOUD_API_KEY,
        "sandbox_spec_id": RUNTIME_API_IMAGE,
    }
    options.update(kwargs)
    return OpenHandsCloudWorkspace(**options)


@group(
    "cloud",
    [
        "provision",
        "sandbox_running",
        "command_user",
        "file_round_trip",
        "get_llm",
        "get_llm_profile",
        "get_secrets",
        "get_mcp_config",
        "conversation_with_cloud_llm",
        "secret_reaches_shell_masked",
        "secret_not_sent_to_llm",
        "secret_not_exposed_by_rest",
        "other_user_sees_nothing",
        "foreign_session_key_refused",
        "keep_alive_cleanup_leaves_running",
        "reattach_by_sandbox_id",
        "cleanup_deletes",
        "bad_cloud_key_raises",
    ],
    budget=420.0,
    applies=runtime_api_applies,
)
def cloud_group(g: Group) -> None:
    if RUNTIME_API_UNAVAILABLE:
        raise Abort(f"no sandbox server: {RUNTIME_API_UNAVAILABLE}")
    if not (CLOUD_API_URL and CLOUD_API_KEY and CLOUD_LLM_PORT and CLOUD_SECRET):
        raise Abort("OH_CONFORMANCE_CLOUD_API_* are not set")
    g.defer(delete_own_sandboxes)
    # The user's LLM settings point at this port; the sandboxes share the host's loopback.
    llm = ScriptedLLM().start(CLOUD_LLM_PORT)
    g.defer(llm.stop)
    local = Path(tempfile.mkdtemp(prefix="local-", dir=STATE_ROOT))

    with g.check("provision", fatal=True):
        ws = timed(g, "provision", lambda: cloud_workspace(keep_alive=True))
        ensure(ws.host.startswith("http://") and ws.api_key, f"host {ws.host!r}, session key set: {bool(ws.api_key)}")
        ensure(ws.alive, f"{ws.host}/health does not answer")
    sandbox_id = ws._sandbox_id
    url = ws.host

    with g.check("sandbox_running"):
        info = cloud_sandbox(sandbox_id)
        ensure(info is not None and info["status"] == "RUNNING", f"sandbox {short(info)}")
        ensure(info["sandbox_spec_id"] == RUNTIME_API_IMAGE, f"sandbox_spec_id {info['sandbox_spec_id']!r}")
        urls = {u["name"]: u["url"].rstrip("/") for u in info["exposed_urls"] or []}
        ensure(urls == {"AGENT_SERVER": url}, f"exposed_urls {info['exposed_urls']}")
        ensure(info["session_api_key"] == ws.api_key, "the session key differs from the workspace's")

    with g.check("command_user"):
        r = ws.execute_command("id -u")
        ensure(r.exit_code == 0 and r.stdout == "10001\n", f"exit_code {r.exit_code}, stdout {r.stdout!r}, stderr {short(r.stderr)}")

    data = os.urandom(128 * 1024)
    remote = f"{ws.working_dir}/cloud/round-trip.bin"
    with g.check("file_round_trip"):
        (local / "up.bin").write_bytes(data)
        r = ws.file_upload(local / "up.bin", remote)
        ensure(r.success and r.file_size == len(data), f"upload: success {r.success}, size {r.file_size}, error {r.error}")
        d = ws.file_download(remote, local / "down.bin")
        ensure(d.success and (local / "down.bin").read_bytes() == data, f"download: success {d.success}, error {d.error}")

    cloud_llm = None
    with g.check("get_llm", fatal=True):
        cloud_llm = ws.get_llm(num_retries=0, usage_id="agent")
        ensure(cloud_llm.model == "openai/scripted", f"model {cloud_llm.model!r}")
        ensure(cloud_llm.base_url == llm.base_url, f"base_url {cloud_llm.base_url!r}, the LLM is at {llm.base_url}")
        ensure(cloud_llm.api_key is not None and cloud_llm.api_key.get_secret_value() == CLOUD_LLM_KEY, "api_key is not the user's")

    with g.check("get_llm_profile"):
        fast = ws.get_llm("fast")
        ensure(fast.model == "openai/scripted-fast" and fast.usage_id == "profile:fast", f"profile: model {fast.model!r}, usage_id {fast.usage_id!r}")
        try:
            ws.get_llm("no-such-profile")
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("get_llm of an unknown profile did not raise FileNotFoundError")

    secrets = {}
    with g.check("get_secrets", fatal=True):
        secrets = ws.get_secrets()
        ensure(list(secrets) == ["CONFORMANCE_TOKEN"], f"names {list(secrets)}")
        token = secrets["CONFORMANCE_TOKEN"]
        ensure(isinstance(token, LookupSecret), f"a {type(token).__name__}")
        ensure(token.url == f"{CLOUD_API_URL}/api/v1/sandboxes/{sandbox_id}/settings/secrets/CONFORMANCE_TOKEN", f"url {token.url}")
        ensure(ws.get_secrets(names=["NOPE"]) == {}, "a filter by name kept other names")

    with g.check("get_mcp_config"):
        mcp = ws.get_mcp_config()
        ensure(set(mcp) == {"sse_0"}, f"servers {sorted(mcp)}")
        server = mcp["sse_0"]
        ensure(getattr(server, "url", None) == "http://127.0.0.1:9/sse", f"sse_0 {short(server)}")

    events: list = []
    conversation = None
    llm.script(
        terminal('printf %s "$CONFORMANCE_TOKEN" | sha256sum; echo "token=$CONFORMANCE_TOKEN"'),
        finish("done with the token"),
    )
    with g.check("conversation_with_cloud_llm", fatal=True):
        agent = Agent(llm=cloud_llm, tools=get_default_tools(enable_browser=False))
        conversation = Conversation(
            agent=agent, workspace=ws, secrets=secrets, callbacks=[events.append], visualizer=None
        )
        g.defer(conversation.close)
        conversation.send_message("Use the deploy token.")
        timed(g, "conversation", lambda: conversation.run(timeout=RUN_TIMEOUT))
        status = conversation.state.execution_status
        ensure(status == Status.FINISHED, f"status {status}")
        ensure(llm.authorizations and all(a == f"Bearer {CLOUD_LLM_KEY}" for a in llm.authorizations),
               f"{len(llm.authorizations)} LLM requests, not all with the user's key")

    with g.check("secret_reaches_shell_masked"):
        outputs = [observation_text(e) for e in events if isinstance(e, ObservationEvent) and e.tool_name == "terminal"]
        ensure(len(outputs) == 1, f"{len(outputs)} terminal observations")
        digest = hashlib.sha256(CLOUD_SECRET.encode()).hexdigest()
        ensure(digest in outputs[0], f"the shell did not get the value: {short(outputs[0])}")
        ensure(CLOUD_SECRET not in outputs[0] and "token=<secret-hidden>" in outputs[0], f"observation {short(outputs[0])}")

    with g.check("secret_not_sent_to_llm"):
        ensure(llm.requests and all(CLOUD_SECRET not in str(r) for r in llm.requests), "an LLM request holds the value")

    with g.check("secret_not_exposed_by_rest"):
        with httpx.Client(base_url=url, headers={"X-Session-API-Key": ws.api_key}, timeout=30) as client:
            for path in (f"/api/conversations/{conversation.id}", f"/api/conversations/{conversation.id}/events/search"):
                text = client.get(path).text
                ensure(CLOUD_SECRET not in text, f"{path} shows the value")
        with cloud_api() as client:
            for path in ("/api/v1/users/me", "/api/v1/sandboxes/search"):
                text = client.get(path).text
                ensure(CLOUD_SECRET not in text and CLOUD_LLM_KEY not in text, f"{path} shows a secret")

    with g.check("other_user_sees_nothing"):
        ensure(cloud_sandbox(sandbox_id, CLOUD_API_KEY_OTHER) is None, "the other user sees the sandbox")
        with cloud_api(CLOUD_API_KEY_OTHER) as client:
            status = client.delete(f"/api/v1/sandboxes/{sandbox_id}", params={"sandbox_id": sandbox_id}).status_code
            ensure(status == 404, f"the other user's delete: {status}")
            status = client.post(f"/api/v1/sandboxes/{sandbox_id}/resume").status_code
            ensure(status == 404, f"the other user's resume: {status}")
        info = cloud_sandbox(sandbox_id)
        ensure(info is not None and info["status"] == "RUNNING", f"after the other user: {short(info)}")

    with g.check("foreign_session_key_refused"):
        second = cloud_workspace()
        try:
            with httpx.Client(base_url=CLOUD_API_URL, headers={"X-Session-API-Key": second.api_key}, timeout=30) as client:
                resp = client.get(f"/api/v1/sandboxes/{sandbox_id}/settings/secrets/CONFORMANCE_TOKEN")
            ensure(resp.status_code == 403, f"another sandbox's key: {resp.status_code}")
            ensure(CLOUD_SECRET not in resp.text, "the refusal shows the value")
        finally:
            second.cleanup()

    conversation.close()
    with g.check("keep_alive_cleanup_leaves_running", fatal=True):
        ws.cleanup()
        info = cloud_sandbox(sandbox_id)
        ensure(info is not None and info["status"] == "RUNNING", f"after cleanup: {short(info)}")

    with g.check("reattach_by_sandbox_id", fatal=True):
        again = timed(g, "reattach", lambda: cloud_workspace(sandbox_id=sandbox_id))
        ensure(again.host == url, f"url {again.host}, first {url}")
        d = again.file_download(remote, local / "again.bin")
        ensure(d.success and (local / "again.bin").read_bytes() == data, "the uploaded file is gone")

    with g.check("cleanup_deletes"):
        again.cleanup()
        ensure(cloud_sandbox(sandbox_id) is None, "the sandbox is still listed")
        status = http_status(f"{url}/health")
        ensure(status is None, f"{url}/health answered {status} after the delete")

    with g.check("bad_cloud_key_raises"):
        try:
            cloud_workspace(cloud_api_key="not-a-user-key")
        except httpx.HTTPStatusError as exc:
            ensure(exc.response.status_code == 401, f"status {exc.response.status_code}")
        else:
            raise AssertionError("OpenHandsCloudWorkspace with a wrong key did not raise")


# --------------------------------------------------------------------------- main


def main(argv: list[str]) -> None:
    verbose = "-v" in argv
    filters = [a for a in argv if a != "-v"]
    if not SERVER_COMMAND:
        print("OH_CONFORMANCE_SERVER is not set (the server's command line, with {port})", file=sys.stderr)
        sys.exit(2)
    unknown = [f for f in filters if not any(name.startswith(f) or f.startswith(name + ".") for name, *_ in GROUPS)]
    if unknown:
        print(f"unknown check groups: {unknown}; groups: {[name for name, *_ in GROUPS]}", file=sys.stderr)
        sys.exit(2)
    derived = base64.b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()
    if "+" in derived or "/" in derived:
        print(f"SECRET_KEY derives {derived}: the reference's Fernet refuses it", file=sys.stderr)
        sys.exit(2)
    runner = Runner(filters, verbose)
    print(f"conformance: {LABEL} server: {SERVER_COMMAND}", flush=True)
    for name, checks, budget, fn, applies in GROUPS:
        if not runner.selected(name):
            continue
        reason = applies()
        if reason:
            runner.skip(name, reason)
        else:
            runner.run_group(name, checks, fn, budget)
    runner.summary_and_exit()


if __name__ == "__main__":
    main(sys.argv[1:])
