"""vsr: reproduce NVIDIA's NVVL video super-resolution study (VSRNet, .mp4 vs .png loaders)."""

__version__ = "0.1.0"
