"""A linear-chain CRF in torch with BIO transition constraints.

Transitions that BIO forbids (``O -> I-X``, ``B-X -> I-Y``, starting with
``I-X``) are masked with a large negative score, so Viterbi never produces an
invalid sequence and the NLL never rewards one. The parameters live in the
module, so they are saved with the model (``model.to_bytes``).
"""
from typing import List, Sequence

import torch
from torch import nn

NEG = -1e4


def bio_constraints(tags: Sequence[str]) -> torch.Tensor:
    """(n_tags + 1, n_tags) mask: row ``i`` is the previous tag, the last row
    the sequence start; 0 where allowed, NEG where BIO forbids it."""
    n = len(tags)
    mask = torch.zeros(n + 1, n)
    for j, cur in enumerate(tags):
        if not cur.startswith("I-"):
            continue
        label = cur[2:]
        mask[n, j] = NEG
        for i, prev in enumerate(tags):
            if prev[2:] != label or prev == "O":
                mask[i, j] = NEG
    return mask


class CRF(nn.Module):
    def __init__(self, tags: Sequence[str]) -> None:
        super().__init__()
        n = len(tags)
        self.n_tags = n
        self.transitions = nn.Parameter(torch.zeros(n, n))
        self.start = nn.Parameter(torch.zeros(n))
        self.end = nn.Parameter(torch.zeros(n))
        self.register_buffer("constraints", bio_constraints(tags))

    def _trans(self) -> torch.Tensor:
        return self.transitions + self.constraints[:-1]

    def _start(self) -> torch.Tensor:
        return self.start + self.constraints[-1]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood. ``emissions`` (B, T, K), ``tags``
        (B, T) and ``mask`` (B, T, bool) with each row's valid positions
        first (a row may be empty)."""
        keep = mask.any(1)
        if not keep.any():
            return emissions.sum() * 0.0
        emissions, tags, mask = emissions[keep], tags[keep], mask[keep]
        return (self._log_partition(emissions, mask) - self._score(emissions, tags, mask)).sum()

    def _score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = emissions.shape
        trans = self._trans()
        maskf = mask.float()
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = self._start()[tags[:, 0]] + (emit * maskf).sum(1)
        if T > 1:
            score = score + (trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        last = mask.long().sum(1) - 1
        score = score + self.end[tags.gather(1, last.unsqueeze(1)).squeeze(1)]
        return score

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        trans = self._trans()
        alpha = self._start() + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> List[List[int]]:
        """Viterbi: the best valid tag sequence for each row's masked positions."""
        B, T, K = emissions.shape
        trans = self._trans()
        score = self._start() + emissions[:, 0]
        history = []
        for t in range(1, T):
            best, idx = (score.unsqueeze(2) + trans.unsqueeze(0)).max(dim=1)
            nxt = best + emissions[:, t]
            m = mask[:, t].unsqueeze(1)
            score = torch.where(m, nxt, score)
            history.append(torch.where(m, idx, torch.arange(K, device=idx.device).expand(B, K)))
        score = score + self.end
        lengths = mask.long().sum(1).tolist()
        out = []
        best_last = score.argmax(1).tolist()
        for b in range(B):
            if lengths[b] == 0:
                out.append([])
                continue
            tag = best_last[b]
            path = [tag]
            for t in range(lengths[b] - 1, 0, -1):
                tag = int(history[t - 1][b, tag])
                path.append(tag)
            out.append(path[::-1])
        return out

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-position tag marginals (forward-backward), for confidence and
        entropy. Positions outside the mask are zeros."""
        trans = self._trans()
        B, T, K = emissions.shape
        alphas = [self._start() + emissions[:, 0]]
        for t in range(1, T):
            nxt = torch.logsumexp(alphas[-1].unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, t]
            alphas.append(torch.where(mask[:, t].unsqueeze(1), nxt, alphas[-1]))
        lengths = mask.long().sum(1)
        betas = [None] * T
        beta = self.end.expand(B, K).clone()
        for t in range(T - 1, -1, -1):
            is_last = (lengths - 1 == t).unsqueeze(1)
            if t < T - 1:
                stepped = torch.logsumexp(trans.unsqueeze(0) + (emissions[:, t + 1] + betas[t + 1]).unsqueeze(1), dim=2)
                inside = mask[:, t + 1].unsqueeze(1)
                beta = torch.where(inside, stepped, self.end.expand(B, K))
            beta = torch.where(is_last, self.end.expand(B, K), beta)
            betas[t] = beta
        alpha = torch.stack(alphas, 1)
        beta = torch.stack(betas, 1)
        logz = torch.logsumexp(alpha + beta, dim=2, keepdim=True)
        probs = torch.exp(alpha + beta - logz)
        return probs * mask.unsqueeze(2).float()
