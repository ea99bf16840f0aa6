"""Stage 1 of a run, load: the policy repository read from disk — strict YAML with line and
column, schema validation, cross-references (`repository.py`)."""
