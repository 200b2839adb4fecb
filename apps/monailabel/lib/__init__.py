"""The MONAI Label app's own modules: bundle discovery, the infer and train tasks, and model publication."""
