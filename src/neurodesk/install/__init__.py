"""Transparent install: commands.txt, wrappers, modules and menus for an image's commands."""
