"""The ``anthropic-router`` command line: flags, configuration errors, ``check`` and ``claude-env``."""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import KEY, RouterFactory, server_url
from fake_vllm import FakeVLLM, Turn
from router_process import free_port, run_cli

from router import __version__
from router.check import run_check
from router.claude_env import KEY_PLACEHOLDER, run_claude_env
from router.cli import build_parser, load, main
from router.config import DEFAULT_API_KEY, Settings, load_settings

ServerFactory = Callable[..., Awaitable[TestServer]]
AUTO_TOOL_ERROR = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No router variable from the developer's shell, no .env from the checkout."""
    for var in (
        "HOST",
        "PORT",
        "LOG_LEVEL",
        "API_KEY",
        "VLLM_URL",
        "VLLM_MODEL",
        "VLLM_API_KEY",
        "VISION_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


# --- flags and configuration errors ---------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"anthropic-router {__version__}"


def test_help_lists_flags_and_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in (
        "--host",
        "--port",
        "--env-file",
        "--log-level",
        "--version",
        "serve",
        "check",
        "claude-env",
    ):
        assert word in out


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"VLLM_URL": "localhost:8000"}, "VLLM_URL"),
        ({"STARTUP_TIMEOUT": "-1"}, "STARTUP_TIMEOUT"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable_and_exit_2(
    env: dict[str, str], variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for command in ([], ["check"], ["claude-env"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("anthropic-router: configuration error: " + variable)


def test_missing_env_file_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env-file", "nope.env", "check"]) == 2
    assert "--env-file nope.env: no such file" in capsys.readouterr().err


def test_flags_override_environment_which_overrides_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "router.env"
    env_file.write_text("PORT=1111\nHOST=10.0.0.1\nLOG_LEVEL=error\nVLLM_MODEL=from-file\n")
    monkeypatch.setenv("PORT", "2222")
    parse = build_parser().parse_args
    settings = load(parse(["--env-file", str(env_file)]))
    assert (settings.port, settings.host, settings.log_level) == (2222, "10.0.0.1", "error")
    assert settings.default_backend.model == "from-file"
    for argv in (
        ["--env-file", str(env_file), "--port", "3333", "--host", "127.0.0.1", "--log-level", "debug"],
        [
            "check",
            "--env-file",
            str(env_file),
            "--port",
            "3333",
            "--host",
            "127.0.0.1",
            "--log-level",
            "debug",
        ],
        [
            "--port",
            "3333",
            "--log-level",
            "debug",
            "serve",
            "--host",
            "127.0.0.1",
            "--env-file",
            str(env_file),
        ],
    ):
        settings = load(parse(argv))
        assert (settings.port, settings.host, settings.log_level) == (3333, "127.0.0.1", "debug"), argv


def test_default_env_file_is_read_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VLLM_URL=http://gpu:8000\n")
    assert load(build_parser().parse_args([])).default_backend.urls == ("http://gpu:8000",)


async def test_real_entry_point_reports_bad_config(tmp_path: Path) -> None:
    code, out, err = await run_cli(cwd=tmp_path, PORT="abc")
    assert (code, out) == (2, "")
    assert err == "anthropic-router: configuration error: PORT='abc' is not a whole number\n"


# --- check ----------------------------------------------------------------------------------------------


def settings_for(url: str, **env: str) -> Settings:
    return load_settings(
        {"VLLM_URL": url, "API_KEY": KEY, "HOST": "127.0.0.1", "CONNECT_TIMEOUT": "2", **env}, None
    )


async def check(settings: Settings, tools: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_check(settings, out, tools=tools)
    return code, out.getvalue()


async def test_check_on_a_good_backend(vllm_server: TestServer) -> None:
    url = server_url(vllm_server)
    code, out = await check(settings_for(url))
    assert code == 0, out
    assert re.search(rf"^  ok    {re.escape(url)}  vLLM 0\.32\.0, answered /health in \d+ ms$", out, re.M)
    assert "serves tiny, max_model_len 8192" in out
    assert "/tokenize works: count_tokens is exact" in out
    assert "tool calling: not checked" in out
    assert "warning" not in out and "Every backend answers" in out
    assert KEY not in out


async def test_check_reports_each_problem_and_exits_1(
    aiohttp_server: ServerFactory, vllm_server: TestServer
) -> None:
    good = server_url(vllm_server)
    port = free_port()
    dead = f"http://127.0.0.1:{port}"
    keyed = server_url(await aiohttp_server(FakeVLLM(api_key="vllm-key").app))
    settings = settings_for(f"{good},http://user:url-secret@127.0.0.1:{port}", VISION_URL=keyed, VISION_MODEL="tiny", BACKEND_BIG_URL=good,
                            BACKEND_BIG_MODEL="huge-model", HOST="0.0.0.0", API_KEY=DEFAULT_API_KEY)  # fmt: skip
    code, out = await check(settings)
    assert code == 1
    assert f"  FAIL  {dead}\n        problem: Cannot connect to host" in out
    assert "problem: /v1/models answered 401: wrong or missing API key (set VISION_API_KEY" in out
    assert "problem: does not serve huge-model (BACKEND_BIG_MODEL); it lists: tiny" in out
    assert "backend big (BACKEND_BIG_URL; model: huge-model, BACKEND_BIG_MODEL)" in out
    assert f"  ok    {good}" in out  # the working replica is still reported as working
    assert "warning: API_KEY includes the public default" in out
    assert out.rstrip().endswith("3 problem(s) found.")
    assert "url-secret" not in out  # credentials in a backend URL are never printed


async def test_check_tools_finds_tool_calling_off_and_on(vllm: FakeVLLM, vllm_server: TestServer) -> None:
    settings = settings_for(server_url(vllm_server))
    vllm.script(Turn(status=400, error=AUTO_TOOL_ERROR, error_type="BadRequestError"))
    code, out = await check(settings, tools=True)
    assert code == 1
    assert "tool calling is off, Claude Code needs it: start vLLM with --enable-auto-tool-choice" in out
    code, out = await check(settings, tools=True)
    assert code == 0 and 'tool calling: on (tool_choice "auto" accepted)' in out
    sent = vllm.requests[-1]
    assert (sent["tool_choice"], sent["max_tokens"]) == ("auto", 1)


async def test_check_notes_a_backend_without_tokenize(aiohttp_server: ServerFactory) -> None:
    vllm = FakeVLLM()

    @web.middleware
    async def no_tokenize(request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path == "/tokenize":
            return web.json_response({"detail": "Not Found"}, status=404)  # an older vLLM, or not vLLM
        return await handler(request)

    vllm.app.middlewares.append(no_tokenize)
    code, out = await check(settings_for(server_url(await aiohttp_server(vllm.app))))
    assert code == 0 and "/tokenize answered 404: count_tokens will estimate" in out


async def test_check_command_end_to_end(vllm_server: TestServer, tmp_path: Path) -> None:
    code, out, _ = await run_cli("check", cwd=tmp_path, VLLM_URL=server_url(vllm_server))
    assert code == 0 and "serves tiny" in out
    code, out, _ = await run_cli("check", cwd=tmp_path, VLLM_URL=f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "1 problem(s) found." in out


# --- claude-env -----------------------------------------------------------------------------------------


async def claude_env(settings: Settings, **kwargs: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run_claude_env(settings, out, err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def exports(text: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(.*)$", text, re.M))


async def test_claude_env_asks_the_running_router(
    router_factory: RouterFactory, aiohttp_server: ServerFactory
) -> None:
    vllm = FakeVLLM(model="org/coder", max_model_len=32768)
    vllm_url = server_url(await aiohttp_server(vllm.app))
    router = await router_factory(vllm_url)
    base = str(router.make_url("")).rstrip("/")
    code, out, _ = await claude_env(settings_for(vllm_url), url=base)
    assert code == 0
    assert f"model and window from the router at {base}" in out
    assert exports(out) == {
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": f"'{KEY_PLACEHOLDER}'",
        "ANTHROPIC_MODEL": "org/coder",
        "ANTHROPIC_SMALL_FAST_MODEL": "org/coder",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "org/coder",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW": "32768",
    }
    assert KEY not in out  # a real key is never printed
    assert "32768 tokens is small for Claude Code" in out


async def test_claude_env_falls_back_to_the_backend(aiohttp_server: ServerFactory) -> None:
    vllm_url = server_url(await aiohttp_server(FakeVLLM(model="m", max_model_len=131072).app))
    settings = settings_for(vllm_url, API_KEY=DEFAULT_API_KEY, PORT=str(free_port()))
    code, out, _ = await claude_env(settings)
    assert code == 0
    assert f"from vLLM at {vllm_url} (the router at http://127.0.0.1:{settings.port} did not list it)" in out
    values = exports(out)
    assert values["ANTHROPIC_API_KEY"] == DEFAULT_API_KEY  # the public default is no secret
    assert values["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{settings.port}"
    assert values["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "131072"
    assert "is small" not in out


@pytest.mark.parametrize(
    ("env", "small"),
    [
        ({"ROUTE_BACKGROUND": "small"}, "small"),
        # The literal name is shadowed by an earlier glob to another backend: the backend name is used.
        ({"MODEL_MAP": "claude-haiku-4*=small,claude-haiku-*=default,claude-haiku-local=small"}, "small"),
        ({"ROUTE_BACKGROUND": "small", "MODEL_MAP": "claude-*=default"}, "m"),  # MODEL_MAP wins
        ({"ROUTE_BACKGROUND": "small", "MODEL_MAP": "claude-haiku-local=small"}, "claude-haiku-local"),
        ({"MODEL_MAP": "*haiku*=small"}, "small"),
        ({}, "m"),
    ],
)
async def test_claude_env_background_model_follows_the_routes(
    vllm_server: TestServer, env: dict[str, str], small: str
) -> None:
    url = server_url(vllm_server)
    settings = settings_for(url, BACKEND_SMALL_URL=url, VLLM_MODEL="m", PORT=str(free_port()), **env)
    code, out, _ = await claude_env(settings)
    assert code == 0
    values = exports(out)
    assert values["ANTHROPIC_SMALL_FAST_MODEL"] == values["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == small


async def test_claude_env_as_a_shell_function(vllm_server: TestServer) -> None:
    settings = settings_for(server_url(vllm_server), PORT=str(free_port()))
    code, out, _ = await claude_env(settings, function="claude-local")
    assert code == 0
    assert "function claude-local() {\n  ANTHROPIC_BASE_URL=" in out
    assert '  CLAUDE_CODE_AUTO_COMPACT_WINDOW=8192 \\\n  claude "$@"\n}\n' in out


async def test_claude_env_without_router_or_backend_fails(tmp_path: Path) -> None:
    settings = settings_for(f"http://127.0.0.1:{free_port()}", PORT=str(free_port()))
    code, out, err = await claude_env(settings)
    assert (code, out) == (1, "")
    assert "run `anthropic-router check`" in err
