"""All live-system I/O. One module per target type; see base.Connector."""
