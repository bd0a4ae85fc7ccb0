"""The domain-free core every domain builds on; it imports no domain package.

- ``lightning``: the Lightning namespace (``lightning.pytorch`` or ``pytorch_lightning``) all classes subclass;
- ``optim``: LARS, the typed ``Optim`` block and the one schedule builder ``configure_optim``;
- ``ema``: moving-average target networks; ``dist``: gathers and byte counts;
- ``callbacks``: ``FiniteLossGuard``, ``CheckpointOnException``, ``ChannelsLast``;
- ``checkpoints``: loading an encoder's weights; ``download``: ``MissingDataError`` and ``fetch``;
- ``layers``: ``MLP``, ``feature_dim_of``.
"""
