"""The shared connector contract (suite.py) and the connectors that must pass it."""
