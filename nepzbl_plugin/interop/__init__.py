"""Conversion between nepzbl's objects and other codes' (calorine).

Beside :mod:`nepzbl_plugin.model`: it imports the model, nothing below it imports this."""
