"""anthropic-router: the Anthropic Messages API in front of vLLM."""

__version__ = "0.1.0"
