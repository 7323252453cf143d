"""Homeward: laboratory information system for autologous cell therapy batches."""
