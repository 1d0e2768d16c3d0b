"""The `vcwave` console script: Invoke's `Program` over the product's task namespace.

Why a subclass: Invoke exits 1 on a parse error and prints one terse line. An administrator (and a CI job
or AWX template) must be able to tell "you typed it wrong" from "the run failed", so every parse error
(unknown flag, a flag without its value, a missing required flag) exits 2 and shows the command's usage.
The checkout's `invoke` gets the same behaviour through `exit_2_on_parse_errors` (tasks.py).
"""
from __future__ import annotations

import contextlib
import re
import sys
from typing import Any

from invoke import Program
from invoke.exceptions import Exit, ParseError
from invoke.parser import Parser
from invoke.parser.parser import Lexicon

from orchestrator.cli.tasks import REQUIRED, ns, running_as

PARSE_ERROR_EXIT = 2
_PARSE_TASKS, _PARSE_CLEANUP = Program.parse_tasks, Program.parse_cleanup  # Invoke's own, before any patch
_MAKE_PARSER = Program._make_parser


class _OwnContexts(Lexicon):
    """The task contexts of one parser. Invoke builds them anew for every parser (`Collection.to_contexts`),
    deep-copies the whole set before each parse, and copies again each context the parse switches to (the
    copy that takes the flags' values). The first copy protects nothing and was half the CPU of reading a
    command line (~5 ms of ~12, for every `vcwave` command and every refusal): here it is the object itself.
    A parse still never sees another's values (the per-context copy, and contexts of each parser's own)."""

    def __deepcopy__(self, memo: dict) -> "_OwnContexts":
        return self


def make_parser(program: Program) -> Parser:
    """`Program._make_parser` over contexts that are not deep-copied again (_OwnContexts)."""
    parser = _MAKE_PARSER(program)
    own = _OwnContexts(parser.contexts)
    dict.__setattr__(own, "aliases", dict(parser.contexts.aliases))
    parser.contexts = own
    return parser


def _missing_required(tasks: Any) -> None:
    """Raise ParseError for a required flag that was not given (Invoke only knows required positionals,
    and a positional would swallow `--help`)."""
    for ctx in tasks:
        for flag in REQUIRED.get(ctx.name, ()):
            if ctx.args[flag].value is None:  # given but empty: the command names what is wrong with it
                raise ParseError(f"'{ctx.name}' needs --{flag.replace('_', '-')}", ctx)


def _message(error: ParseError) -> str:
    """Invoke's message, with a flag named the way it is typed (`--inventory`, not `<Argument: ...>`)."""
    return re.sub(r"Flag <Argument: (\w+)[^>]*> needed value and was not given one!",
                  lambda m: f"--{m.group(1).replace('_', '-')} needs a value", str(error))


def _usage(program: Program, error: ParseError) -> None:
    """The failing command's help (or the program's) on stderr, after the error itself."""
    print(f"{running_as()}: error: {_message(error)}", file=sys.stderr)
    name = getattr(error.context, "name", None)
    with contextlib.redirect_stdout(sys.stderr):
        if name and name in getattr(program, "parser", None).contexts:
            print()
            program.print_task_help(name)
        else:
            print(f"run `{running_as()} --list` for the commands, `{running_as()} <command> --help` for one")


def parse_tasks_exit_2(program: Program) -> None:
    """`Program.parse_tasks`, then the required-flag check; a parse error exits 2 with the usage. Every
    message of the run (parse errors and the commands' own) is prefixed with the program being run:
    `vcwave`, or Invoke's (named `Invoke`) as `invoke`."""
    running_as(program.name.lower())
    try:
        _PARSE_TASKS(program)
        if not program.args.help.value:  # `plan --help` shows the help, whatever is missing
            _missing_required(program.tasks)
    except ParseError as exc:
        _usage(program, exc)
        raise Exit(code=PARSE_ERROR_EXIT) from None


def parse_cleanup_exit_2(program: Program) -> None:
    """`--help nosuchcommand` is a parse error too."""
    try:
        _PARSE_CLEANUP(program)
    except ParseError as exc:
        _usage(program, exc)
        raise Exit(code=PARSE_ERROR_EXIT) from None


# Invoke's core options that mean something for vcwave; the others (--pty, --dry, --echo, ...) concern shell
# commands run by tasks, which vcwave's commands never run: they are accepted but not advertised.
SHOWN_CORE_OPTIONS = ("--help", "--list", "--version", "--debug", "--complete", "--print-completion-script")


class VcwaveProgram(Program):
    """Invoke's Program with exit code 2 and the command's usage on every parse error, and a help page that
    shows the commands and the core options that apply to them."""

    def parse_tasks(self) -> None:
        parse_tasks_exit_2(self)

    def _make_parser(self) -> Parser:
        return make_parser(self)

    def parse_cleanup(self) -> None:
        parse_cleanup_exit_2(self)

    def print_help(self) -> None:
        print(f"Usage: {self.binary} [--help|--list|--version] <command> [--flags]   ({self.binary} <command> --help)")
        print("")
        print("Options:")
        print("")
        self.print_columns([t for t in self.initial_context.help_tuples()
                            if set(re.findall(r"--[\w-]+", t[0])) & set(SHOWN_CORE_OPTIONS)])
        self.list_tasks()


def exit_2_on_parse_errors(program_cls: type[Program] = Program) -> None:
    """For the checkout's `invoke` (tasks.py): the running Invoke program gets the same parse behaviour (and
    the same parser, without the redundant copy: `_OwnContexts`)."""
    program_cls.parse_tasks = parse_tasks_exit_2  # type: ignore[method-assign]
    program_cls.parse_cleanup = parse_cleanup_exit_2  # type: ignore[method-assign]
    program_cls._make_parser = make_parser  # type: ignore[method-assign]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("vcwave")
    except PackageNotFoundError:
        return "unknown"


program = VcwaveProgram(namespace=ns, name="vcwave", binary="vcwave", version=_version())


def main() -> None:
    """Entry point of the `vcwave` console script ([project.scripts])."""
    program.run()
