"""Reading the policy repository from disk: strict YAML, schema validation, cross-references."""
