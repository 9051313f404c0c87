"""placeholder"""
import click


@click.group(name="clients")
def group() -> None:
    """clients"""
