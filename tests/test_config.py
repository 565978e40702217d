"""Settings: defaults from the seed README, .env handling, and one-line errors naming the variable."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from router.config import DEFAULT_API_KEY, ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_seed_defaults() -> None:
    s = load_settings({}, env_file=None)
    assert (s.host, s.port) == ("0.0.0.0", 3456)
    assert s.api_keys == (DEFAULT_API_KEY,)
    assert s.default_backend.urls == ("http://localhost:8000",)
    assert s.default_backend.model == "default" and s.default_backend.discover_model
    assert s.default_backend.api_key is None
    assert s.vision_backend is None
    assert s.telemetry_enabled is False
    assert s.log_level == "info"
    assert s.max_body_bytes == 32 * 1024 * 1024


def test_settings_are_frozen() -> None:
    s = load_settings({}, env_file=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_env_example_documents_every_default(tmp_path: Path) -> None:
    # .env.example copied as .env must behave exactly like no configuration at all.
    assert load_settings({}, env_file=ROOT / ".env.example") == load_settings({}, env_file=None)


def test_env_example_lists_every_variable() -> None:
    text = (ROOT / ".env.example").read_text()
    source = (ROOT / "router" / "config.py").read_text()
    import re

    used = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', source)) - {"BACKEND_"}
    missing = sorted(v for v in used if v not in text)
    assert not missing, f".env.example lacks {missing}"


def test_dotenv_file_and_environment_precedence(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=4000\nVLLM_URL=http://gpu:8000\nVLLM_MODEL=qwen\n")
    s = load_settings({"PORT": "5000"}, env_file=env_file)
    assert s.port == 5000  # the environment wins
    assert s.default_backend.urls == ("http://gpu:8000",)
    assert s.default_backend.model == "qwen"


def test_vision_backend_and_keys() -> None:
    s = load_settings(
        {
            "VISION_URL": "http://vis:9000/",
            "VISION_API_KEY": "vk",
            "API_KEY": "a, b ,c",
            "VLLM_API_KEY": "bk",
        },
        env_file=None,
    )
    assert s.vision_backend is not None
    assert s.vision_backend.urls == ("http://vis:9000",)
    assert s.vision_backend.model == "gpt-4-vision"
    assert s.vision_backend.api_key == "vk"
    assert s.api_keys == ("a", "b", "c")
    assert "bk" not in repr(s) and "vk" not in repr(s) and "'a'" not in repr(s)


def test_replicas_and_named_backends() -> None:
    s = load_settings(
        {
            "VLLM_URL": "http://a:1, http://b:2",
            "BACKEND_SMALL_URL": "http://c:3",
            "BACKEND_SMALL_MODEL": "qwen-small",
            "MODEL_MAP": "*haiku*=small, claude-opus-*=default",
            "ROUTE_THINK": "SMALL",
        },
        env_file=None,
    )
    assert s.default_backend.urls == ("http://a:1", "http://b:2")
    assert s.backends["small"].model == "qwen-small"
    assert [(r.pattern, r.backend) for r in s.model_map] == [
        ("*haiku*", "small"),
        ("claude-opus-*", "default"),
    ]
    assert s.route_think == "small"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"VLLM_URL": "localhost:8000"}, "VLLM_URL"),
        ({"VLLM_URL": "http://localhost:8000/v1"}, "VLLM_URL"),
        ({"VISION_URL": "ftp://x"}, "VISION_URL"),
        ({"TELEMETRY_ENABLED": "maybe"}, "TELEMETRY_ENABLED"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"MAX_BODY_MB": "-1"}, "MAX_BODY_MB"),
        ({"API_KEY": " , "}, "API_KEY"),
        ({"MODEL_MAP": "*haiku*=nowhere"}, "nowhere"),
        ({"MODEL_MAP": "justtext"}, "MODEL_MAP"),
        ({"ROUTE_BACKGROUND": "ghost"}, "ROUTE_BACKGROUND"),
        ({"SYSTEM_MESSAGES": "hoist"}, "SYSTEM_MESSAGES"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings(env, env_file=None)


def test_bad_config_exits_2_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "router"],
        env={"PORT": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "PORT" in lines[0], proc.stderr
