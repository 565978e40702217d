"""Thin HTTP handlers: parse, choose a backend, call the pure translators, stream."""
