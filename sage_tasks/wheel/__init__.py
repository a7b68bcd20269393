"""Wheel files: reading and relabelling them, checking them before install, the GPU code in their binaries."""
