"""Building images from recipes, without a Docker daemon."""
