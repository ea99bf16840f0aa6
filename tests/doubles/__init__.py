"""HTTP doubles of SaaS APIs that cannot run here; each speaks real HTTP to the real SDK."""
