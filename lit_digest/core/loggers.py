"""Lightning's ``WandbLogger`` without the noise of a setting W&B retired.

Lightning passes ``anonymous=None`` to ``wandb.init`` on every run; W&B (>= 0.19) answers each run with "The
anonymous setting has no effect and will be removed in a future version", which a user cannot act on. This
subclass leaves the setting out and is otherwise Lightning's class (``isinstance(logger, pl.loggers.WandbLogger)``
holds). ``configs/_base/wandb.yaml`` uses it.
"""

from __future__ import annotations

from typing import Any

from lit_digest.core.lightning import pl

__all__ = ["WandbLogger"]


class WandbLogger(pl.loggers.WandbLogger):
    __doc__ = pl.loggers.WandbLogger.__doc__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)  # what wandb.init receives
