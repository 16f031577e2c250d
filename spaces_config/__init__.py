"""Hugging Face Space packaging: the Space README template and the push tool."""
