"""The thin command-line layer (``stemprint``)."""
