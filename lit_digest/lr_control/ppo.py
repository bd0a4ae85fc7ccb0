"""PPO for the controller (Schulman et al., arXiv 1707.06347), as the paper meta-trains it (arXiv 2106.00958).

Pure functions over padded episodes: ``gae`` (generalised advantage estimation, arXiv 1506.02438) and
``ppo_loss`` (clipped surrogate, value regression, entropy bonus). Defaults are the authors' config
(``example_config.jsonnet``, ``ppo_hyperparams``): clip 0.2, entropy 0.01, value coefficient 0.5, GAE lambda 0.95,
gamma 1, gradient norm 5; ``PPOConfig.lr`` is ours (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PPOConfig", "gae", "ppo_loss"]


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings. ``lr``: the paper's 2e-4 suits its millions of decisions; at our few thousand episodes a
    larger step learns in the time there is. ``epochs`` passes of ``minibatches`` over each iteration's episodes
    (the paper reuses each sample up to 4 times)."""

    lr: float = 1e-3
    clip: float = 0.2
    entropy: float = 0.01
    value: float = 0.5
    gamma: float = 1.0
    lam: float = 0.95
    max_grad_norm: float = 5.0
    epochs: int = 4
    minibatches: int = 2


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of episodes ``(E, K)`` (``mask`` 1 where a decision happened; an episode ends at its
    last one, with no bootstrap). Returns ``(advantages, returns)``, both ``(E, K)``, zero where masked."""
    E, K = rewards.shape
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(E, dtype=rewards.dtype, device=rewards.device)
    for k in reversed(range(K)):
        next_value = values[:, k + 1] * mask[:, k + 1] if k + 1 < K else torch.zeros_like(running)
        next_running = running * (mask[:, k + 1] if k + 1 < K else 0.0)
        delta = rewards[:, k] + gamma * next_value - values[:, k]
        running = (delta + gamma * lam * next_running) * mask[:, k]
        advantages[:, k] = running
    return advantages, (advantages + values) * mask


def ppo_loss(logits: list[torch.Tensor], values: torch.Tensor, actions: torch.Tensor, old_logprob: torch.Tensor,
             advantages: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2,
             value_coef: float = 0.5, entropy_coef: float = 0.01) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped PPO objective to minimise, averaged over the unmasked decisions.

    Args:
        logits: one ``(E, K, A_i)`` tensor per action head (the heads are independent; an action's log-probability
            is the sum over heads).
        values: ``(E, K)`` the critic now; actions ``(E, K, H)`` indices; old_logprob ``(E, K)`` at rollout time;
        advantages, returns, mask: ``(E, K)``.
    """
    logprob = torch.zeros_like(values)
    entropy = torch.zeros_like(values)
    for i, lg in enumerate(logits):
        logp = torch.log_softmax(lg, dim=-1)  # (E, K, A_i)
        logprob = logprob + logp.gather(-1, actions[..., i : i + 1]).squeeze(-1)
        entropy = entropy - (logp.exp() * logp).sum(-1)
    ratio = torch.exp(logprob - old_logprob)  # (E, K)
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    n = mask.sum().clamp_min(1)
    policy_loss = -(surrogate * mask).sum() / n
    value_loss = 0.5 * ((values - returns) ** 2 * mask).sum() / n
    mean_entropy = (entropy * mask).sum() / n
    loss = policy_loss + value_coef * value_loss - entropy_coef * mean_entropy
    with torch.no_grad():
        stats = {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": mean_entropy,
                 "approx_kl": ((old_logprob - logprob) * mask).sum() / n,
                 "clip_fraction": (((ratio - 1).abs() > clip).float() * mask).sum() / n}
    return loss, stats
