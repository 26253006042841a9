"""Dialogue understanding shared by nodes and memory: `slots` (typed slot extraction and the shared regexes),
`messages` (a message's text), `task` (the active task), `facts` (tool results as sentences)."""
