"""The ``assay`` command: noun groups with verb subcommands.

Command modules are imported when their command runs (or when help lists them), so
``assay serve`` does not pay for the HTTP clients and statistics that ``assay eval``
needs.
"""

from __future__ import annotations

import importlib

import click

from assay import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}

#: command name -> "module:attribute" of the click command, in help order.
COMMANDS: dict[str, str] = {
    "serve": "assay.cli.serve:serve",
    "traces": "assay.cli.traces:traces",
    "stats": "assay.cli.traces:stats",
    "models": "assay.cli.traces:models",
    "goldens": "assay.cli.goldens:goldens",
    "eval": "assay.cli.evals:eval_",
    "drift": "assay.cli.drift:drift",
    "monitors": "assay.cli.monitors:monitors",
    "online": "assay.cli.online:online",
    "feedback": "assay.cli.feedback:feedback",
    "queues": "assay.cli.queues:queues",
    "calibrate": "assay.cli.calibrate:calibrate",
    "quality": "assay.cli.calibrate:quality",
    "projects": "assay.cli.keys:projects",
    "keys": "assay.cli.keys:keys",
    "store": "assay.cli.store:store",
    "demo": "assay.cli.demo:demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, in :data:`COMMANDS` order."""
        return [*COMMANDS, *sorted(set(self.commands) - set(COMMANDS))]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module if needed."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="assay")
def cli() -> None:
    """assay: traces, costs and quality of LLM applications, in one process.

    Start with `assay serve`, point an OpenTelemetry exporter at
    http://127.0.0.1:7800/v1/traces, then `assay stats` and `assay traces list`.
    Test changes with `assay eval run GOLDEN.yaml --target ...` and `assay eval compare`.
    Every option can also be set through an ASSAY_* environment variable.
    """


def main() -> None:
    """Console-script entry point."""
    cli(auto_envvar_prefix="ASSAY")
