"""VAE+GAN face animation: encode a photo and a driving clip, move the photo's latent by the clip's
latent differences from its first frame, decode each step into a frame."""
