"""The playground's tabs, one package or module per concern."""
