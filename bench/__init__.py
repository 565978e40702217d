"""anthropic-router's own benchmark: the router against the physical limit ("direct"), issue 7.

``make bench`` (``python -m bench``) starts a fake vLLM backend that also speaks Anthropic natively,
starts the router in front of it, runs the scenarios against both and prints router/direct
ratios with the targets. See bench/README.md.
"""
