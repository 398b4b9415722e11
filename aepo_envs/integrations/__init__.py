"""Bridges from aepo envs to other tool protocols (MCP)."""
