"""``python -m lit_digest.text.lm_eval``: EleutherAI's lm-evaluation-harness command with lit_digest's model.

It takes lm_eval's own arguments (``lm-eval run --help`` lists them; lm_eval's parser reads them) with the model
``lit_digest`` (``lit_digest.text.harness.LitDigestLM``) registered and the default ``--model``. A wrong
``checkpoint=`` (another method's, or no checkpoint) is refused before the harness loads anything; a ``--tasks``
entry that is a ``.jsonl`` file of our few-shot format becomes a harness task (``write_task``):

    python -m lit_digest.text.lm_eval --model_args checkpoint=runs/.../last.ckpt --tasks lambada_openai
    python -m lit_digest.text.lm_eval --model_args pretrained=gpt-j-6b,dtype=bfloat16 --tasks hellaswag piqa
    python -m lit_digest.text.lm_eval --model_args checkpoint=last.ckpt --tasks mine.jsonl --num_fewshot 3
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lit_digest.core.checkpoints import expect_checkpoint
from lit_digest.core.console import script
from lit_digest.text.harness import LitDigestLM, write_task

__all__ = ["main", "LitDigestLM", "write_task"]


# -- the command -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def _check_model_args(model_args: Any) -> None:
    """Refuse a wrong checkpoint or folder before the harness indexes its tasks and loads anything."""
    args = model_args if isinstance(model_args, dict) else {}
    if args.get("checkpoint"):
        from lit_digest.text.gptj.module import CausalLM

        expect_checkpoint(args["checkpoint"], CausalLM)
    if args.get("pretrained") and not (Path(str(args["pretrained"])) / "config.json").is_file():
        from lit_digest.core.download import missing_data_error

        raise missing_data_error("GPT-J folder (config.json)", Path(str(args["pretrained"])),
                                 fix="pass pretrained=<a folder written by save_pretrained / save_hf>")


def main(argv: list[str] | None = None) -> int:
    """``lm-eval run`` with the ``lit_digest`` model registered (and the default ``--model``)."""
    from lm_eval._cli import HarnessCLI  # the parser lm_eval's own command uses
    from lm_eval.utils import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        argv = argv[1:]
    if not any(a in ("--model", "-M") or a.startswith("--model=") for a in argv) and "--config" not in argv:
        argv = ["--model", "lit_digest", *argv]
    setup_logging()
    cli = HarnessCLI()
    with _argv(["lm-eval", "run", *argv]):
        args = cli.parse_args()
    if getattr(args, "model", None) == "lit_digest":
        _check_model_args(getattr(args, "model_args", None))
    with tempfile.TemporaryDirectory(prefix="lit_digest_tasks_") as folder:
        tasks = getattr(args, "tasks", None) or []
        args.tasks = [str(write_task(t, folder)) if str(t).endswith(".jsonl") and Path(t).is_file() else t
                      for t in tasks] or None
        cli.execute(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(script(main)())
