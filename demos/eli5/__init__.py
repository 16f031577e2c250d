"""ELI5 explainers: containers and deployment in everyday words.

The words live in data files beside this package (see README.md there);
ui.build_tab puts them on the page.
"""

from .checker import check_explanation
from .content import concepts, explainer_markdown, get_concept, search_glossary

__all__ = ["check_explanation", "concepts", "explainer_markdown", "get_concept", "search_glossary"]
