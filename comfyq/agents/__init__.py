"""Templates as Model Context Protocol tools, for agents: ``comfyq mcp`` (stdio) and ``/mcp`` (streamable HTTP).

The MCP server is a client of the REST API: every tool call goes through
``comfyq.client`` with the caller's own key, so the API's checks, credits and
limits apply unchanged. It imports nothing of the server.
"""
