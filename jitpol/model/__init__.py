"""Plain values jitpol computes with. Imports nothing else of jitpol."""
