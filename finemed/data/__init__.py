"""Dataset registry (bundled data, hub ids) and typed loaders."""
