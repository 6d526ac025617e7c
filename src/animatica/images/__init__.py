"""Picture creation: Stable Diffusion operations, style transfer, prompts and the content filter."""
