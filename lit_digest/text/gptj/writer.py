"""``completions.jsonl``: what ``predict`` writes for a causal language model.

``python -m lit_digest predict --config configs/gptj/jargon.yaml --ckpt_path <ckpt>`` continues every prompt of
the DataModule (``data.init_args.prompts``) and writes one JSON object a line to
``<run folder>/completions.jsonl``: ``{"prompt": ..., "completion": ..., "tokens": [...]}`` (``completion`` is the
new text only; ``tokens`` its token ids).
"""

from __future__ import annotations

import json
from pathlib import Path

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule, Trainer, pl
from lit_digest.core.outputs import announce

__all__ = ["CompletionWriter"]


class CompletionWriter(pl.callbacks.BasePredictionWriter):
    """Collects the ``{"prompt", "completion", "tokens"}`` rows ``CausalLM.predict_step`` returns and writes them
    (one file per rank under several processes: ``completions_rank<r>.jsonl``).

    Args:
        dirpath: the folder; ``None`` is the run folder.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.dirpath = dirpath
        self.rows: list[dict] = []
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        self.rows += [{k: (list(map(int, v)) if k == "tokens" else v) for k, v in row.items()} for row in prediction]

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.rows:
            return
        folder = Path(self.dirpath) if self.dirpath else run_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        self.path = folder / f"completions{suffix}.jsonl"
        self.path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows), encoding="utf-8")
        announce(self.path, len(self.rows), "completions")
