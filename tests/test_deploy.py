"""The deployment files: the Dockerfile's build and start commands run outside Docker (no engine here),
the docs' ``docker run`` lines against the image's entry point, compose and the systemd unit checked."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from conftest import server_url
from fake_vllm import FakeVLLM
from router_process import free_port

from router.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
ServerFactory = Callable[..., Awaitable[TestServer]]


# --- Dockerfile ------------------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile_stages() -> list[Stage]:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for item in shlex.split(args):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec (JSON) form: {args}"
    return value


def test_dockerfile_is_multi_stage_slim_non_root_with_python_healthcheck() -> None:
    build, runtime = dockerfile_stages()
    assert build.base == runtime.base == "python:3.12-slim"
    assert build.name and f"--from={build.name}" in " ".join(runtime.all("COPY"))
    assert any('".[speed]"' in run for run in build.all("RUN"))
    user = runtime.all("USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert runtime.all("EXPOSE") == ["3456"]
    env = env_of(runtime)
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "3456")
    # Only defaults the router does not have itself: a mounted .env must still be able to set the rest.
    assert set(env) - {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "HOST", "PORT"} == set()
    settings = load_settings({}, None)
    assert (settings.host, settings.port) == (env["HOST"], int(env["PORT"]))
    (healthcheck,) = runtime.all("HEALTHCHECK")
    command = exec_form(healthcheck.partition("CMD")[2].strip())
    assert command[0] == "python"
    text = (ROOT / "Dockerfile").read_text()
    assert "curl" not in text and "wget" not in text
    assert exec_form(runtime.all("ENTRYPOINT")[0]) == ["anthropic-router"]


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule for the subset of pattern syntax the file uses: the last matching pattern wins, a
    pattern matches a path or any of its parent directories, ``!`` re-includes."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = (
            re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        )
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_sends_only_what_the_image_copies() -> None:
    for path in ("pyproject.toml", "README.md", "router/app.py", "router/handlers/messages.py"):
        assert not dockerignore_excludes(path), path
    for path in (
        ".env",
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "router/__pycache__/app.pyc",
    ):
        assert dockerignore_excludes(path), path
    build, _ = dockerfile_stages()
    for copy in build.all("COPY"):
        for source in copy.split()[:-1]:
            assert not dockerignore_excludes(source.rstrip("/")), f"COPY {source} would find nothing"


@dataclass
class Image:
    """The Dockerfile's stages replayed on this machine, with the image's absolute paths moved under a
    temporary directory: what ``docker build`` then ``docker run`` would execute."""

    root: Path
    env: dict[str, str]
    entrypoint: list[str]
    healthcheck: list[str]

    def path(self, text: str) -> str:
        return re.sub(r"(?<![\w.])/(opt|src|data)\b", lambda m: f"{self.root}/{m.group(1)}", text)


def build_image(root: Path) -> Image:
    build, runtime = dockerfile_stages()
    image = Image(root, {}, [], [])
    host_path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # "python" as the base image has it
    env = {**os.environ, "PATH": host_path}
    cwd = root
    for keyword, args in build.instructions:
        if keyword == "ENV":
            env.update({k: image.path(v) for k, v in env_of(Stage("", None, [(keyword, args)])).items()})
        elif keyword == "WORKDIR":
            cwd = Path(image.path(args))
            cwd.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            # Docker's rules for these forms: a file goes into the destination directory, a directory's
            # contents go into the destination.
            *sources, dest = args.split()
            target = cwd / dest
            target.mkdir(parents=True, exist_ok=True)
            for source in sources:
                if (ROOT / source).is_dir():
                    ignore = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(ROOT / source, target, ignore=ignore, dirs_exist_ok=True)
                else:
                    shutil.copy(ROOT / source, target)
        elif keyword == "RUN":
            done = subprocess.run(
                image.path(args), shell=True, cwd=cwd, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, f"RUN {args}\n{done.stdout}\n{done.stderr}"
    runtime_env = env_of(runtime)
    runtime_env["PATH"] = image.path(runtime_env["PATH"]).replace("$PATH", os.environ["PATH"])
    image.env = runtime_env
    image.entrypoint = exec_form(runtime.all("ENTRYPOINT")[0])
    image.healthcheck = exec_form(runtime.all("HEALTHCHECK")[0].partition("CMD")[2].strip())
    return image


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_image(tmp_path_factory.mktemp("image"))


def docs_docker_runs() -> list[dict[str, str]]:
    """The ``-e NAME=VALUE`` settings of each ``docker run`` in docs/deploy.md."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    runs = []
    for block in re.findall(r"```bash\n(docker run .*?)```", text, re.S):
        runs.append(dict(re.findall(r"-e (\w+)=(\S+)", block)))
        assert "-p 3456:3456" in block and block.rstrip().endswith("anthropic-router")
    return runs


@pytest.fixture
async def container(image: Image, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start the image's entry point with some ``-e`` settings; returns the base URL."""
    procs: list[asyncio.subprocess.Process] = []

    async def run(**env: str) -> str:
        port = free_port()
        full = {**image.env, "HOST": "127.0.0.1", "PORT": str(port), "HEALTH_INTERVAL": "0.2", **env}
        workdir = Path(image.path("/data"))
        workdir.mkdir(parents=True, exist_ok=True)
        with (tmp_path / f"container-{port}.log").open("wb") as log:
            procs.append(
                await asyncio.create_subprocess_exec(
                    *image.entrypoint, env=full, cwd=workdir, stdout=log, stderr=log
                )
            )
        return f"http://127.0.0.1:{port}"

    yield run
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def healthcheck(image: Image, port: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *image.healthcheck, env={**image.env, "PORT": port}, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 10)


async def test_image_runs_the_docs_docker_run_lines(
    image: Image, container: Callable[..., Awaitable[str]], aiohttp_server: ServerFactory
) -> None:
    runs = docs_docker_runs()
    assert len(runs) == 2
    for settings in runs:
        vllm = FakeVLLM(model=settings["VLLM_MODEL"], api_key=settings.get("VLLM_API_KEY"))
        vllm_url = server_url(await aiohttp_server(vllm.app))
        base = await container(**{**settings, "VLLM_URL": vllm_url})  # only the address is ours
        port = base.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                if await healthcheck(image, port) == 0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the image's HEALTHCHECK never passed")
            body = {
                "model": settings["VLLM_MODEL"],
                "max_tokens": 20,
                "messages": [{"role": "user", "content": "Hi"}],
            }
            headers = {"x-api-key": settings["API_KEY"]}
            async with session.post(base + "/v1/messages", json=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
        assert vllm.requests[-1]["model"] == settings["VLLM_MODEL"]
        vllm.healthy = False  # vLLM down: the container turns unhealthy, and back
        for _ in range(200):
            if await healthcheck(image, port) != 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("HEALTHCHECK stayed healthy with vLLM down")


# --- compose ---------------------------------------------------------------------------------------------


def test_compose_runs_vllm_with_tools_gpu_and_cache_and_the_router_after_it() -> None:
    text = (ROOT / "compose.yaml").read_text()
    vllm, router = text.split("\n  router:\n")
    vllm = vllm.split("\n  vllm:\n")[1]
    assert re.search(r"image: vllm/vllm-openai:", vllm)
    assert "--enable-auto-tool-choice" in vllm and "--tool-call-parser=" in vllm
    assert re.search(r"driver: nvidia\n\s+count: all\n\s+capabilities: \[gpu\]", vllm)
    assert re.search(r"- model-cache:/root/\.cache/huggingface", vllm)
    check = re.search(r"healthcheck:\n(?:\s+#.*\n)*\s+test: (\[.*\])", vllm)
    assert check and json.loads(check.group(1))[:2] == ["CMD", "python3"] and "/health" in check.group(1)
    assert re.search(r"depends_on:\n\s+vllm:\n\s+condition: service_healthy", router)
    assert "build: ." in router and "VLLM_URL: http://vllm:8000" in router
    grace = int(re.search(r"stop_grace_period: (\d+)s", router).group(1))
    default_grace = re.search(r"SHUTDOWN_GRACE: \$\{SHUTDOWN_GRACE:-(\d+)\}", router)
    assert default_grace and grace > int(default_grace.group(1))
    # Every router variable compose sets is one the router reads.
    example = (ROOT / ".env.example").read_text()
    for name in re.findall(r"^      ([A-Z_]+):", router, re.M):
        assert re.search(rf"^{name}=", example, re.M), name
    assert "\nvolumes:\n  model-cache:" in text


# --- systemd ---------------------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (ROOT / "deploy" / "anthropic-router.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_is_notify_typed_hardened_and_restarts_on_failure() -> None:
    unit = unit_settings()
    one = {k: v[-1] for k, v in unit.items()}
    assert (one["Type"], one["NotifyAccess"], one["Restart"], one["DynamicUser"]) == (
        "notify",
        "main",
        "on-failure",
        "yes",
    )
    assert one["EnvironmentFile"].startswith("/etc/")
    assert one["ExecStart"].endswith("/bin/anthropic-router")
    assert int(one["TimeoutStopSec"]) > load_settings({}, None).shutdown_grace
    for hardening in (
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "RestrictAddressFamilies",
    ):
        assert hardening in one
    assert "AF_UNIX" in one["RestrictAddressFamilies"]  # NOTIFY_SOCKET is a unix socket


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's installed command.
    executable = shutil.which("anthropic-router", path=str(Path(sys.executable).parent))
    assert executable
    text = (ROOT / "deploy" / "anthropic-router.service").read_text()
    unit = tmp_path / "anthropic-router.service"
    unit.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={executable}", text, flags=re.M))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
    )
    assert security.returncode == 0, security.stdout[-2000:]  # exposure below 2.0 ("OK")
