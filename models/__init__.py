"""Network architectures of worldgen: bare torch modules that know nothing about noise."""
