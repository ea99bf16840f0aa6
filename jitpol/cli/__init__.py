"""The command line: a click group, one thin module per command."""
