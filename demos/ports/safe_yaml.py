"""YAML loading with limits, so that hostile input fails fast with a clear message.

Alias bombs ("billion laughs") stay small while composed, because an alias
points at the node it names; they only explode when walked. So the documents
are composed to nodes first, their expanded size is counted with the aliases
followed, and only then are Python objects built.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from .model import InputRejected, PortsInputError

MAX_INPUT_CHARS = 256 * 1024
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 100_000
MAX_DOCUMENTS = 200
MAX_NUMBER_CHARS = 32


class Sexagesimal(str):
    """A plain scalar like 22:22 that YAML 1.1 reads as a base-60 number (1342); kept as written."""


class BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent, index):  # type: ignore[override]
        # Composing recurses once per nesting level, so the limit keeps Python's stack safe.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InputRejected(f"The YAML is nested more than {MAX_DEPTH} levels deep; real compose files and manifests are far shallower.")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_NUMBER_CHARS:
            return node.value  # no port is that long, and Python refuses to convert thousands of digits
        if ":" in node.value:
            return Sexagesimal(node.value)
        return super().construct_yaml_int(node)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


def expanded_size(root: Node) -> int:
    """How many nodes the document has once every alias is followed; raises past the limit."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH:  # chains of aliases nest deeper than the text shows
            raise InputRejected(f"The YAML is nested more than {MAX_DEPTH} levels deep once its aliases are followed; write the values out instead.")
        if key in in_progress:
            raise InputRejected("The YAML refers to itself through an alias (an anchor used inside itself); remove the loop.")
        in_progress.add(key)
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        total = 1 + sum(size(child, depth + 1) for child in children)
        in_progress.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise InputRejected(
                f"The YAML expands to more than {MAX_EXPANDED_NODES:,} values once its aliases (*name) are followed. "
                "This is how 'billion laughs' attacks work; write the values out instead."
            )
        sizes[key] = total
        return total

    return size(root, 1)


def check_size(text: str) -> None:
    if len(text) > MAX_INPUT_CHARS:
        raise InputRejected(
            f"The text is {len(text):,} characters long; the limit is {MAX_INPUT_CHARS:,}. Paste only the part with the ports."
        )


def load_documents(text: str) -> list[object]:
    """Every document of the text as Python objects; raises PortsInputError with the reason."""
    check_size(text)
    try:
        return [document for document in read_documents(text) if document is not None]
    except yaml.YAMLError as error:
        raise PortsInputError(f"The YAML cannot be read: {error}") from None


def read_documents(text: str) -> list[object]:
    loader = BoundedLoader(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if len(documents) >= MAX_DOCUMENTS:
                raise InputRejected(f"The text has more than {MAX_DOCUMENTS} YAML documents; split it up.")
            expanded_size(node)
            documents.append(loader.construct_document(node))
    finally:
        loader.dispose()
    return documents
