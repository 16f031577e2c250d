"""The Ports & Containers tab: where traffic to published ports goes, and what is wrong with it."""

from .analyze import analyze
from .model import Analysis, Diagnostic, ExposedPort, InputRejected, Mapping, PortsInputError, UnrecognizedInput

__all__ = ["Analysis", "Diagnostic", "ExposedPort", "InputRejected", "Mapping", "PortsInputError", "UnrecognizedInput", "analyze"]
