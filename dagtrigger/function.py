"""The function as it starts: settings, routing rules, the pipeline and the sender checks, assembled in one place.

``main.py`` builds it at import, so a bad setting stops the deployment; ``check`` builds it the very same way, so its
✓ means "this function would start" for the entry point it names; the operator commands (replay, why, sweep) build
their pipeline here too. Nothing else reads the configuration from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from .clock import SYSTEM_CLOCK, Clock
from .exceptions import ConfigError
from .pipeline import Pipeline
from .rules import Rules, load_rules, single_route
from .settings import DEFAULT_ENTRY_POINT, ENTRY_POINTS, Settings, settings_from_env

if TYPE_CHECKING:  # the sender checks are imported by the entry points that use them (cold start: test_startup.py)
    from .sender_auth import PushVerifier


@dataclass(frozen=True)
class Function:
    """What one process serves: the pipeline every entry point shares, and the push verifier for ``trigger_push``."""

    entry_point: str
    pipeline: Pipeline
    push: PushVerifier | None = None

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings

    @property
    def rules(self) -> Rules:
        return self.pipeline.rules


def entry_point_of(env: Mapping[str, str], given: str | None = None) -> str:
    """``given``, else FUNCTION_TARGET, else the CloudEvent entry point; ConfigError for a name main.py lacks."""
    name = (given or env.get("FUNCTION_TARGET", "") or DEFAULT_ENTRY_POINT).strip()
    if name not in ENTRY_POINTS:
        names = ", ".join(ENTRY_POINTS)
        raise ConfigError(f"FUNCTION_TARGET: {name!r} is not an entry point of main.py (one of {names})")
    return name


def rules_from(settings: Settings, env: Mapping[str, str]) -> Rules:
    """The routing rules: ROUTES_FILE (route secrets read from ``env``), else the one-route DAG_ID shortcut."""
    if settings.routes_file:
        return load_rules(settings.routes_file, env)
    assert settings.dag_id is not None  # settings_from_env requires one of the two
    return single_route(settings.dag_id, settings.storage_actions)


def build(
    env: Mapping[str, str] | None = None,
    entry_point: str | None = None,
    log_stream: TextIO | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Function:
    """Validate the configuration for ``entry_point`` and build the function; raises ConfigError (naming the
    variable, with an example) for anything that would stop it from starting. No network call is made."""
    env = os.environ if env is None else env
    entry = entry_point_of(env, entry_point)
    settings = settings_from_env({**env, "FUNCTION_TARGET": entry})
    rules = rules_from(settings, env)
    if entry == "trigger_http":
        from .sender_auth import check_webhook_config

        check_webhook_config(settings, rules)
    pipeline = Pipeline.from_settings(settings, rules, log_stream, clock)
    push = None
    if entry == "trigger_push":
        from .sender_auth import PushVerifier

        push = PushVerifier(settings, clock=clock)
    return Function(entry, pipeline, push)
