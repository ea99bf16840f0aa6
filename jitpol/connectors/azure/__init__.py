"""Azure (type `azure`); see connector.py."""

from jitpol.connectors.azure.connector import ASSIGNMENT_NAMESPACE, AzureConnector, check_name, parse_privilege

__all__ = ["ASSIGNMENT_NAMESPACE", "AzureConnector", "check_name", "parse_privilege"]
