"""The real apps against the stack on the engine: Open WebUI and Langflow, installed from PyPI
(tests/support/apps.py), configured as docs/CLIENTS.md says, driven through their own HTTP APIs
as a user's clicks would be; then every call they sent is one row in `llm_calls` with its app,
user and conversation, and `make report` groups them as a person would read them."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from scripts.native_stack.procs import ManagedProcess, free_port, wait_for_http
from tests.docker.stack import ComposeStack
from tests.support.apps import LANGFLOW, OPEN_WEBUI, offline_env

START_TIMEOUT_S = 420  # first start on a busy machine: imports, migrations, a model catalogue


def report(stack: ComposeStack, by: str) -> dict[str, dict[str, Any]]:
    run = stack.make(f"report ARGS='--json --since 1h --by {by}'", timeout=120).ok()
    doc = json.loads(run.stdout)
    return {row["group_key"]: row for row in doc["rows"]}


def rows_where(stack: ComposeStack, column: str, values: list[str]) -> list[dict[str, Any]]:
    result = stack.clickhouse().query(
        "SELECT app, end_user, conversation_id, is_stream, input_tokens, output_tokens, "
        f"is_error, response_id FROM llm_calls WHERE {column} IN {{v:Array(String)}} "
        "ORDER BY timestamp",
        parameters={"v": values},
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def wait_rows(
    stack: ComposeStack, column: str, values: list[str], count: int, timeout: float = 120
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = rows_where(stack, column, values)
        if len(rows) >= count:
            time.sleep(3)  # a duplicate would arrive with the same batch or just after
            return rows_where(stack, column, values)
        time.sleep(1)
    return rows


# Spans of these end users holding a name (their e-mail addresses start with it) in any value.
PERSONAL_DATA_QUERY = """
SELECT count() FROM otel_traces
WHERE SpanAttributes['litellm.end_user'] IN {ids:Array(String)}
  AND arrayExists(
      v -> positionCaseInsensitive(v, {a:String}) > 0 OR positionCaseInsensitive(v, {b:String}) > 0,
      mapValues(SpanAttributes))
"""


# ---- Open WebUI ---------------------------------------------------------------------------------
@dataclass
class OpenWebUI:
    url: str

    def sign_up(self, name: str) -> tuple[str, dict[str, str]]:
        """The first account, as the sign-up form creates it (the admin): (id, auth headers)."""
        body = {"name": name, "email": f"{name}@example.com", "password": secrets.token_hex(12)}
        answer = httpx.post(f"{self.url}/api/v1/auths/signup", json=body, timeout=60)
        answer.raise_for_status()
        user = answer.json()
        return user["id"], {"Authorization": f"Bearer {user['token']}"}

    def add_user(self, admin: dict[str, str], name: str) -> tuple[str, dict[str, str]]:
        """An account the admin adds (Admin Panel > Users), then its own sign-in."""
        body = {
            "name": name,
            "email": f"{name}@example.com",
            "password": secrets.token_hex(12),
            "role": "user",
        }
        added = httpx.post(f"{self.url}/api/v1/auths/add", json=body, headers=admin, timeout=60)
        added.raise_for_status()
        login = {"email": body["email"], "password": body["password"]}
        answer = httpx.post(f"{self.url}/api/v1/auths/signin", json=login, timeout=60)
        answer.raise_for_status()
        user = answer.json()
        return user["id"], {"Authorization": f"Bearer {user['token']}"}

    def new_chat(self, auth: dict[str, str]) -> str:
        chat = {"chat": {"title": "gateway test", "models": ["verify-mock"], "messages": []}}
        answer = httpx.post(f"{self.url}/api/v1/chats/new", json=chat, headers=auth, timeout=60)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def complete(
        self, auth: dict[str, str], *, stream: bool, chat_id: str | None = None
    ) -> dict[str, Any]:
        """One message, as the chat window sends it (with its chat) or as an API client does
        (without); returns the usage Open WebUI gave back ({} when a stream carried none)."""
        body: dict[str, Any] = {
            "model": "verify-mock",
            "messages": [{"role": "user", "content": f"hello {uuid.uuid4().hex[:6]}"}],
            "stream": stream,
        }
        if chat_id:
            body |= {"chat_id": chat_id, "id": str(uuid.uuid4())}
        url = f"{self.url}/api/chat/completions"
        if not stream:
            answer = httpx.post(url, json=body, headers=auth, timeout=120)
            answer.raise_for_status()
            return dict(answer.json()["usage"])
        usage: dict[str, Any] = {}
        with httpx.stream("POST", url, json=body, headers=auth, timeout=120) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                if line.startswith("data: {"):
                    usage = json.loads(line[6:]).get("usage") or usage
        return usage


@pytest.fixture(scope="module")
def open_webui(
    running: ComposeStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenWebUI]:
    """Open WebUI with the settings docs/CLIENTS.md gives, pointed at the stack's gateway."""
    home = OPEN_WEBUI.install()
    data = tmp_path_factory.mktemp("open-webui")
    port = free_port()
    env = offline_env(
        data,
        DATA_DIR=str(data),
        OPENAI_API_BASE_URLS=f"{running.gateway}/v1",
        OPENAI_API_KEYS=running.env["LITELLM_MASTER_KEY"],
        ENABLE_FORWARD_USER_INFO_HEADERS="true",
        # Not about the gateway: no Ollama to look for, no embedding model to load, a session
        # secret of its own.
        ENABLE_OLLAMA_API="false",
        OFFLINE_MODE="true",
        BYPASS_EMBEDDING_AND_RETRIEVAL="true",
        # Users other than the admin see a connection's models once the admin shares them
        # (Admin Panel > Models); this shares them all, as a small team would.
        BYPASS_MODEL_ACCESS_CONTROL="true",
        WEBUI_SECRET_KEY=secrets.token_hex(16),
    )
    argv = [str(home / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = data / "open-webui.log"
    process = ManagedProcess("open-webui", argv, env=env, log_path=log, cwd=data)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", START_TIMEOUT_S, proc=process)
        yield OpenWebUI(f"http://127.0.0.1:{port}")
    finally:
        process.stop(timeout=30)


def test_open_webui_every_call_has_its_app_user_and_chat(
    running: ComposeStack, open_webui: OpenWebUI
) -> None:
    admin_name, user_name = f"admin-{uuid.uuid4().hex[:6]}", f"user-{uuid.uuid4().hex[:6]}"
    admin_id, admin = open_webui.sign_up(admin_name)  # the first account: the admin
    user_id, user = open_webui.add_user(admin, user_name)
    models = httpx.get(f"{open_webui.url}/api/models", headers=user, timeout=60).json()["data"]
    assert "verify-mock" in [m["id"] for m in models]  # listed through the gateway

    chat = open_webui.new_chat(admin)
    sent = [
        ("admin", chat, open_webui.complete(admin, stream=False, chat_id=chat)),
        ("admin", chat, open_webui.complete(admin, stream=True, chat_id=chat)),
        ("admin", "", open_webui.complete(admin, stream=False)),  # Open WebUI's API, no chat
        ("admin", "", open_webui.complete(admin, stream=True)),
        ("user", "", open_webui.complete(user, stream=False)),
    ]
    ids = {"admin": admin_id, "user": user_id}
    rows = wait_rows(running, "end_user", list(ids.values()), len(sent))

    assert len(rows) == len(sent), rows  # one row per call, none lost, none doubled
    assert {r["app"] for r in rows} == {"open-webui"}, rows  # with or without a chat
    # The calls were sent one after the other: the rows, in time order, are the calls in order.
    for (who, conversation, usage), row, streamed in zip(
        sent, rows, [False, True, False, True, False], strict=True
    ):
        assert (row["end_user"], row["conversation_id"], row["is_stream"]) == (
            ids[who],
            conversation,
            streamed,
        ), row
        if usage:  # the tokens Open WebUI was given, where it was given a count
            assert (row["input_tokens"], row["output_tokens"]) == (
                usage["prompt_tokens"],
                usage["completion_tokens"],
            ), (row, usage)
    assert all(usage for _, _, usage in sent[::2]), sent  # every plain call carried its usage

    # Open WebUI forwards its users' names and e-mail addresses too: none of it is stored.
    stored = (
        running.clickhouse()
        .query(
            PERSONAL_DATA_QUERY,
            parameters={"ids": list(ids.values()), "a": admin_name, "b": user_name},
        )
        .result_rows[0][0]
    )
    assert stored == 0, "a user's name or e-mail address reached ClickHouse"

    by_user = report(running, "user")
    assert by_user[admin_id]["calls"] == 4 and by_user[user_id]["calls"] == 1
    title = running.make("report ARGS='--since 1h --by user'", timeout=120).ok().stdout
    assert admin_id in title and "default_user_id" not in title
    assert report(running, "app")["open-webui"]["calls"] >= len(sent)


# ---- Langflow -----------------------------------------------------------------------------------
OPENAI_COMPONENT = ("openai", "ext:openai:OpenAIModelComponent@official")  # its key in /api/v1/all


@dataclass
class Langflow:
    url: str
    auth: dict[str, str]  # the auto-login session (the editor's)
    api_key: dict[str, str]  # what /api/v1/run needs since Langflow 1.5

    def components(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/api/v1/all", headers=self.auth, timeout=180)
        answer.raise_for_status()
        return dict(answer.json())

    def create_flow(self, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> str:
        flow = {"name": f"gateway-{uuid.uuid4().hex[:8]}", "data": {"nodes": nodes, "edges": edges}}
        answer = httpx.post(f"{self.url}/api/v1/flows/", json=flow, headers=self.auth, timeout=60)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def run(self, flow_id: str, text: str) -> httpx.Response:
        body = {"input_value": text, "input_type": "chat", "output_type": "chat"}
        return httpx.post(
            f"{self.url}/api/v1/run/{flow_id}", json=body, headers=self.api_key, timeout=180
        )


def _node(kind: str, template: dict[str, Any]) -> dict[str, Any]:
    node_id = f"{kind}-{uuid.uuid4().hex[:5]}"
    data = {"id": node_id, "type": kind, "node": json.loads(json.dumps(template))}
    return {"id": node_id, "type": "genericNode", "position": {"x": 0, "y": 0}, "data": data}


def _edge(source: dict[str, Any], output: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """source's `output` into target's `input_value`, as the editor draws the wire."""
    field = target["data"]["node"]["template"]["input_value"]
    source_handle = {
        "dataType": source["data"]["type"],
        "id": source["id"],
        "name": output["name"],
        "output_types": output["types"],
    }
    target_handle = {
        "fieldName": "input_value",
        "id": target["id"],
        "inputTypes": field.get("input_types", ["Message"]),
        "type": field.get("type", "str"),
    }

    def encoded(handle: dict[str, Any]) -> str:
        return json.dumps(handle).replace('"', "œ")  # the editor's handle notation

    return {
        "id": f"reactflow__edge-{source['id']}-{target['id']}",
        "source": source["id"],
        "target": target["id"],
        "sourceHandle": encoded(source_handle),
        "targetHandle": encoded(target_handle),
        "data": {"sourceHandle": source_handle, "targetHandle": target_handle},
    }


def chat_flow(
    components: dict[str, Any], gateway: str, key: str | None, kwargs: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chat Input -> OpenAI -> Chat Output, the OpenAI component set as docs/CLIENTS.md says:
    OpenAI API Base, the master key in its key field (None: the field's default, the global
    variable OPENAI_API_KEY), model kwargs."""
    chat_in = _node("ChatInput", components["input_output"]["ChatInput"])
    chat_out = _node("ChatOutput", components["input_output"]["ChatOutput"])
    group, name = OPENAI_COMPONENT
    model = _node("OpenAIModel", components[group][name])
    fields = model["data"]["node"]["template"]
    fields["openai_api_base"]["value"] = f"{gateway}/v1"
    if key is not None:
        fields["api_key"] |= {"value": key, "load_from_db": False}
    fields["model_name"]["value"] = "verify-mock"
    fields["model_kwargs"]["value"] = kwargs
    text_output = next(o for o in model["data"]["node"]["outputs"] if o["name"] == "text_output")
    message = components["input_output"]["ChatInput"]["outputs"][0]
    edges = [_edge(chat_in, message, model), _edge(model, text_output, chat_out)]
    return [chat_in, model, chat_out], edges


@pytest.fixture(scope="module")
def langflow(running: ComposeStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Langflow]:
    home = LANGFLOW.install()
    data = tmp_path_factory.mktemp("langflow")
    port = free_port()
    env = offline_env(
        data,
        LANGFLOW_CONFIG_DIR=str(data / "config"),
        LANGFLOW_DATABASE_URL=f"sqlite:///{data / 'langflow.db'}",
        LANGFLOW_AUTO_LOGIN="true",
        # docs/CLIENTS.md: without it the OpenAI component refuses the gateway's private address.
        LANGFLOW_SSRF_ALLOWED_HOSTS="127.0.0.1",
        # docs/CLIENTS.md: the component ignores these (a dead address: a call there would fail).
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        OPENAI_API_BASE="http://127.0.0.1:9/v1",
        # docs/CLIENTS.md: a key here is a server-provisioned credential Langflow will not send
        # to the gateway (nor the same value typed into the component: keep the gateway's key
        # out of Langflow's environment, as here).
        OPENAI_API_KEY=f"sk-langflow-environment-{secrets.token_hex(8)}",
    )
    argv = [
        str(home / "bin" / "langflow"),
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-only",
    ]
    log = data / "langflow.log"
    process = ManagedProcess("langflow", argv, env=env, log_path=log, cwd=data)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", START_TIMEOUT_S, proc=process)
        token = httpx.get(f"{url}/api/v1/auto_login", timeout=60).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        key = httpx.post(f"{url}/api/v1/api_key/", json={"name": "tests"}, headers=auth, timeout=60)
        key.raise_for_status()
        yield Langflow(url, auth, {"x-api-key": key.json()["api_key"]})
    finally:
        process.stop(timeout=30)


# model kwargs -> (app, end user, conversation) in llm_calls. LangChain takes a top-level
# `tags` as its own callback tags: it never reaches the gateway (docs/CLIENTS.md).
LANGFLOW_KWARGS = {
    "extra_body": (
        {
            "extra_body": {"tags": ["app:langflow"], "metadata": {"session_id": "SESSION"}},
            "user": "USER",
        },
        ("langflow", "USER", "SESSION"),
    ),
    "default_headers": (
        {"default_headers": {"x-litellm-tags": "app:langflow-headers"}, "user": "USER"},
        ("langflow-headers", "USER", ""),
    ),
    "tags (does not reach the gateway)": (
        {"tags": ["app:never-seen"], "user": "USER"},
        ("", "USER", ""),
    ),
}


@pytest.mark.parametrize("shape", list(LANGFLOW_KWARGS))
def test_langflow_flow_run_is_recorded_with_its_app(
    running: ComposeStack, langflow: Langflow, shape: str
) -> None:
    user, session = f"lf-{uuid.uuid4().hex[:8]}", f"lf-session-{uuid.uuid4().hex[:8]}"
    kwargs, want = json.loads(
        json.dumps(LANGFLOW_KWARGS[shape]).replace("USER", user).replace("SESSION", session)
    )
    nodes, edges = chat_flow(
        langflow.components(), running.gateway, running.env["LITELLM_MASTER_KEY"], kwargs
    )
    answer = langflow.run(langflow.create_flow(nodes, edges), "hello from a flow")
    assert answer.status_code == 200, answer.text[:2000]
    message = answer.json()["outputs"][0]["outputs"][0]["results"]["message"]
    assert message["text"] == "The gateway works. This answer is a local mock."
    usage = message["properties"]["usage"]

    rows = wait_rows(running, "end_user", [user], 1)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["app"], row["end_user"], row["conversation_id"]) == tuple(want)
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )


def test_langflow_guards_named_in_the_docs(running: ComposeStack, langflow: Langflow) -> None:
    """What a user meets before the recipe works, each as docs/CLIENTS.md says it."""
    components = langflow.components()
    key = running.env["LITELLM_MASTER_KEY"]
    port = running.gateway.rsplit(":", 1)[1]

    # A host not in LANGFLOW_SSRF_ALLOWED_HOSTS (the same gateway by another name) is refused.
    nodes, edges = chat_flow(components, f"http://localhost:{port}", key, {})
    refused = langflow.run(langflow.create_flow(nodes, edges), "hi")
    assert refused.status_code == 500 and "LANGFLOW_SSRF_ALLOWED_HOSTS" in refused.text

    # The key from Langflow's own environment is not sent to the gateway.
    nodes, edges = chat_flow(components, running.gateway, None, {})
    withheld = langflow.run(langflow.create_flow(nodes, edges), "hi")
    assert withheld.status_code != 200
    assert "LANGFLOW_PROVIDER_CREDENTIAL_ALLOWED_HOSTS" in withheld.text, withheld.text[:2000]

    # /api/v1/run wants an API key even with auto-login.
    nodes, edges = chat_flow(components, running.gateway, key, {})
    flow_id = langflow.create_flow(nodes, edges)
    body = {"input_value": "hi", "input_type": "chat", "output_type": "chat"}
    session_only = httpx.post(
        f"{langflow.url}/api/v1/run/{flow_id}", json=body, headers=langflow.auth, timeout=60
    )
    assert session_only.status_code == 403, session_only.text[:500]
