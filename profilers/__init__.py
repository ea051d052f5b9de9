"""Everything that runs on the GPU host: sensors, measured runs, the protocol, the agent.

Needs no LLM and no language-server packages, so a GPU host can run the agent alone.
"""
