"""Management commands of the flakewatch app."""
