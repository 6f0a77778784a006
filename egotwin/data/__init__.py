"""Data: the clip data set and the latent cache the diffusion stages train from."""
