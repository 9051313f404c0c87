"""placeholder"""
import click


@click.group(name="db")
def group() -> None:
    """db"""
