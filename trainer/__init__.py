"""Train, evaluate and export the two-code VAE (PyTorch side of the project)."""
