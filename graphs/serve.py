"""The compiled graph `langgraph dev` / Studio serve (see langgraph.json).

The server supplies its own checkpointer and store; services (shop DB, Chroma, classifier) are built
lazily from the environment on the first run, seeding the demo data if the data directory is new.
"""

from graphs.supervisor import build_supervisor

graph = build_supervisor().compile(name="supervisor")
