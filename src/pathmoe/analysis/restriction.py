"""`PathRestrictionHook`: route every token along one of a fixed set of expert paths (Table 3).

The paper continues training a PathB8 model "with routing restricted to its top-N paths" but does
not say how a top-k router is restricted. Our choice: only the top-1 expert (which defines the
path) is restricted. At layer l a token may take as top-1 any expert `paths[c, l]` of a candidate
path c that agrees with the token's top-1 choices at all earlier layers; it takes the most probable
of those. The other k-1 experts are free: the most probable remaining experts. Any of them more
probable than the path expert has its weight capped just below the path expert's, so the path
expert is always the heaviest; this matters because the model re-sorts columns by weight and
column 0 defines the path. Weights are gathered from `probs` (then capped and renormalised), so the
router still gets gradients.
"""

from __future__ import annotations

import numpy as np
import torch

from pathmoe.model import RoutingHook

# A free expert more probable than the path expert has its weight capped just below the path
# expert's, so sorting by weight can never put it in column 0.
_CAP = 1.0 - 1e-4


class PathRestrictionHook(RoutingHook):
    """Restrict each token's top-1 path to the rows of `paths` [P, L]."""

    def __init__(self, paths: np.ndarray | torch.Tensor):
        paths = torch.as_tensor(np.asarray(paths), dtype=torch.long)
        if paths.ndim != 2 or 0 in paths.shape:
            raise ValueError(f"paths must be a non-empty [num_paths, layers] array, got shape {tuple(paths.shape)}")
        if paths.min() < 0:
            raise ValueError(f"paths hold a negative expert id ({int(paths.min())})")
        self.paths = paths  # [P, L]
        self.candidates: torch.Tensor | None = None  # [N, P] bool: paths still consistent per token

    def begin(self, num_tokens: int) -> None:
        self.candidates = torch.ones(num_tokens, self.paths.shape[0], dtype=torch.bool)

    def select(self, layer: int, probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        num_layers = self.paths.shape[1]
        if layer >= num_layers:
            raise ValueError(f"layer {layer} out of range: the restriction paths have {num_layers} layers")
        n, num_experts = probs.shape
        if int(self.paths[:, layer].max()) >= num_experts:
            raise ValueError(f"paths use expert {int(self.paths[:, layer].max())} at layer {layer}, "
                             f"but the router has {num_experts} experts")
        if self.candidates is None or self.candidates.shape[0] != n:
            self.begin(n)
        device = probs.device
        self.candidates = self.candidates.to(device)
        column = self.paths[:, layer].to(device)  # [P]
        onehot = torch.nn.functional.one_hot(column, num_experts).float()  # [P, E]
        allowed = (self.candidates.float() @ onehot) > 0  # [N, E]
        p = probs.detach()
        top1 = p.masked_fill(~allowed, -1.0).argmax(-1, keepdim=True)  # [N, 1]
        rest = p.scatter(-1, top1, -1.0).topk(k - 1, dim=-1).indices  # [N, k-1] most probable others
        ids = torch.cat([top1, rest], dim=-1)  # [N, k]
        weights = probs.gather(-1, ids)
        head = weights[:, :1]
        tail = torch.minimum(weights[:, 1:], head * _CAP)
        weights = torch.cat([head, tail], dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        self.candidates = self.candidates & (column[None, :] == top1)  # keep consistent paths
        return ids, weights
