"""Small stand-alone tools (no Lightning import): ``python -m lit_digest.tools.<tool> ...``.

- ``shapes``: output sizes, receptive field and effective stride of convolution / pooling stacks,
  from layer specs or from an ``nn.Module``.
"""
