"""The compiled graph `langgraph dev` / Studio serve (see langgraph.json).

The server supplies its own checkpointer and store; services (shop DB, Chroma, classifier) are built
lazily from the environment on the first run, seeding the demo data if the data directory is new. The node
cache (classification, retrieval; observability.cache) is in process memory.
"""

from config.settings import Settings
from graphs.supervisor import build_supervisor
from observability.cache import memory_cache
from observability.tracing import configure_langsmith, install_log_context

install_log_context()
configure_langsmith()
graph = build_supervisor().compile(
    name="supervisor", cache=memory_cache() if Settings().observability().cache.enabled else None
)
