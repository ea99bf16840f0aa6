"""Developer tools: throwaway servers for tests and the demo, the demo itself."""
