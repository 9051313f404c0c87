"""`strongroom user ...` (being written)."""
import click


@click.group(name="user")
def group() -> None:
    """Manage users."""
