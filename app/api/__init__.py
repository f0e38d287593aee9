"""HTTP adapter: thin routes over the engine and the bulk use cases."""
