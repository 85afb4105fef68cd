"""Errors that the command line reports as one clear line (exit code 2)."""


class UserError(Exception):
    """A problem with what the user supplied: a config, a flag, a file.

    The message must name the problem and say how to fix it; the CLI prints it
    on one line and exits with status 2, without a traceback.
    """


class ConfigError(UserError):
    """An invalid configuration value, key, preset or YAML file."""


class CheckpointError(UserError):
    """A missing, unreadable or incompatible checkpoint or run folder."""


class TrainingDiverged(Exception):
    """Training stopped because too many consecutive meta-batches were not finite.

    The CLI reports it on one line with exit status 3; the run folder keeps its
    last checkpoint (saved before the divergence), which ``--resume`` and
    ``eval`` read.
    """
