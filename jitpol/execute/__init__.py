"""Carrying out a plan: the executor and the run lock."""
