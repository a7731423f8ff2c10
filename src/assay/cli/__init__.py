"""The ``assay`` command: noun groups with verb subcommands."""

from __future__ import annotations

import click

from assay import __version__
from assay.cli.evals import eval_
from assay.cli.goldens import goldens
from assay.cli.keys import keys, projects
from assay.cli.serve import serve
from assay.cli.traces import models, stats, traces

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="assay")
def cli() -> None:
    """assay: traces, costs and quality of LLM applications, in one process.

    Start with `assay serve`, point an OpenTelemetry exporter at
    http://127.0.0.1:7800/v1/traces, then `assay stats` and `assay traces list`.
    Test changes with `assay eval run GOLDEN.yaml --target ...` and `assay eval compare`.
    Every option can also be set through an ASSAY_* environment variable.
    """


for command in (serve, traces, stats, models, goldens, eval_, projects, keys):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(auto_envvar_prefix="ASSAY")
