"""Firmware image formats the harness knows how to build, check and forge (cl. 70 software update).

``image.py`` is tek-image-v1, the format of the simulated controller; a real device's format is
another module and another ``firmware`` fault injector, named by the profile's ``update.image_format``.
"""
