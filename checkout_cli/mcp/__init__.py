"""``checkout mcp``: the registry's endpoints as MCP tools, over any backend."""
