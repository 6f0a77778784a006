"""Learned models: the motion VAE, the video VAE, the text encoder and the EgoTwin diffusion transformer."""
