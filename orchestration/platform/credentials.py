"""Keep AWS credentials out of everything Ray writes.

Ray Tune copies `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and
`AWS_SECURITY_TOKEN` from the driver's environment into the runtime env of every trial
(`ray/tune/execution/class_cache.py`), and Ray's runtime-env agent writes runtime envs to
`logs/runtime_env_agent.log` in the session folder: the keys would sit there in plain text.

Trials do not need them passed along: on one machine, the Ray processes that `hmtl` starts
inherit the environment of the command (a process environment, not a file); on a cluster
every node has its own credentials (instance profile, `~/.aws/credentials`, see
cluster.yaml), which the AWS chain finds by itself. So the keys are simply dropped from
the list Tune propagates.
"""

from __future__ import annotations

SECRET_VARS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)


def keep_credentials_out_of_runtime_envs() -> None:
    """Stop Tune from copying AWS credentials into trials' runtime envs (and so Ray's logs).

    Call before a Tuner starts trials; Tune reads the list when it creates a trial actor.
    """
    from ray.tune.execution import class_cache  # pinned Ray 2.60: a module-level set

    class_cache.ENV_VARS_TO_PROPAGATE.difference_update(SECRET_VARS)


def propagated_secrets() -> set[str]:
    """The credential variables Tune would still copy into runtime envs (empty when safe)."""
    # Lazy: keeps ray out of the checks that run before Ray starts.
    from ray.tune.execution import class_cache

    return set(class_cache.ENV_VARS_TO_PROPAGATE) & SECRET_VARS
