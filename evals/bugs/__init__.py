"""Injected-bug generation for the bundled eval set."""
