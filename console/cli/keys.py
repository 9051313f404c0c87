"""`strongroom keys ...` (being written)."""
import click


@click.group(name="keys")
def group() -> None:
    """Manage keyss."""
