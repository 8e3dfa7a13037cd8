"""The sandboxed agent runtime: wasmtime engine, component cache, instances, limits, pool."""
