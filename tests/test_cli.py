"""Tests for radscribe/cli.py: every sub-command has a parser and a function that exists."""

from __future__ import annotations

import argparse
import importlib

import pytest

from radscribe.cli import COMMANDS, build_parser


def _subcommands() -> set[str]:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_parser_section_has_a_command_and_back():
    assert _subcommands() == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_function_exists(name):
    module, func = COMMANDS[name].split(":")
    assert callable(getattr(importlib.import_module(module), func))
