"""The only place that talks to an LLM endpoint: client, cache, the simulated LLM and its server."""
