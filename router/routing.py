"""Which backend a request goes to, and why.

Precedence (first match wins), documented in the README:

1. ``vision``       the request carries an image and ``VISION_URL`` is set: only that backend can see it;
2. ``long_context`` ``ROUTE_LONG_CONTEXT`` is set and the request is estimated above ``LONG_CONTEXT_TOKENS``
                    (a backend that cannot hold the prompt would only answer 400);
3. ``model``        the client asked for a backend by name (``model: "small"``) or by the model it serves;
4. ``model_map``    the first ``MODEL_MAP`` glob that matches the client's model (case-insensitive);
5. ``background``   ``ROUTE_BACKGROUND`` is set and the model is haiku-class (Claude Code's titles, recaps);
6. ``think``        ``ROUTE_THINK`` is set and thinking is enabled;
7. ``default``      everything else, unknown model names included.

Names the client chose (3, 4) beat traits the router guesses (5, 6): a ``MODEL_MAP`` rule is an explicit
decision, the haiku and thinking heuristics only fill in for names nobody mapped.

Pure: takes the settings and the parsed request body (Anthropic or OpenAI shape), returns names.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from .config import DEFAULT_BACKEND, VISION_BACKEND, Settings

# A cheap size estimate for the long-context rule: routing must not wait for a tokenizer round trip.
CHARS_PER_TOKEN = 4

# OpenAI content parts that need a multimodal model (vLLM's names); audio is not a vision backend's job.
OPENAI_VISION_PARTS = frozenset({"image_url", "image_embeds", "video_url"})

RULES = ("vision", "long_context", "model", "model_map", "background", "think", "default")


def estimate_tokens(body_size: int) -> int:
    return body_size // CHARS_PER_TOKEN


def choose_backend(
    settings: Settings,
    body: dict[str, Any],
    *,
    has_image: bool,
    body_size: int,
    served: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Return ``(backend name, rule)`` for a request; ``rule`` is one of :data:`RULES`.

    ``served`` maps backend names to the model each one serves as learned at run time, so a client can
    ask for a model by the id ``/v1/models`` lists even when its backend's model was discovered.
    """
    backends = settings.backends
    model = body.get("model")
    model = model if isinstance(model, str) else ""
    if has_image and VISION_BACKEND in backends:
        return VISION_BACKEND, "vision"
    if settings.route_long_context and estimate_tokens(body_size) > settings.long_context_tokens:
        return settings.route_long_context, "long_context"
    lowered = model.lower()
    if model:
        if lowered in backends:
            return lowered, "model"
        for name, cfg in backends.items():
            if cfg.model == model and not cfg.discover_model:
                return name, "model"
        for name, served_model in (served or {}).items():
            if served_model == model and name in backends:
                return name, "model"
        for rule in settings.model_map:
            if fnmatchcase(lowered, rule.pattern.lower()):
                return rule.backend, "model_map"
    if settings.route_background and "haiku" in lowered:
        return settings.route_background, "background"
    if settings.route_think and thinking_enabled(body):
        return settings.route_think, "think"
    return DEFAULT_BACKEND, "default"


def thinking_enabled(body: dict[str, Any]) -> bool:
    """Thinking asked for in either dialect: Anthropic ``thinking``, or OpenAI/vLLM reasoning switches."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        return True
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort != "none":
        return True
    kwargs = body.get("chat_template_kwargs")
    return isinstance(kwargs, dict) and (
        kwargs.get("enable_thinking") is True or kwargs.get("thinking") is True
    )


def has_openai_image(body: dict[str, Any]) -> bool:
    """Whether an OpenAI chat request carries an image (or video) part in any message; never raises."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if isinstance(kind, str) and kind in OPENAI_VISION_PARTS:
                    return True
    return False
