"""Authentication and ownership for the served API (LangGraph custom auth).

- `auth.identity`: who a caller is (user, tenant, role) and how that is read back from an authenticated user.
- `auth.keys`: API keys, stored hashed in SQLite or Postgres (`Settings.auth_target`).
- `auth.handlers`: the `Auth` object `langgraph.json` names; per-resource ownership rules.
- `auth.cli`: `python app.py apikey create | list | revoke`.
"""
