"""Training scripts: stage 0 (small video VAE), stage 1 (motion VAE), latent caching, and what they share (`common`)."""
