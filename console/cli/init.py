"""placeholder"""
import click


@click.group(name="init")
def group() -> None:
    """init"""
