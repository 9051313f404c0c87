"""placeholder"""
import click


@click.group(name="demo")
def group() -> None:
    """demo"""
