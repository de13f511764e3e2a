"""Imports every model family so that its presets register themselves."""
