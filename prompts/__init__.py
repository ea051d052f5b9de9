"""Prompt templates, shipped as package data; read them with importlib.resources."""
