"""Scale-out: the project served by Aegra on Postgres and Redis (adapters, `make cluster`, the load benchmark)."""
