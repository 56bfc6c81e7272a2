r"""A small ResNet for 8x8 digits: a stem, two residual blocks with batch norm, average pooling
to 2x2 and a linear classifier (the architecture of ``dgating nn-experiment``'s
``digits-resnet`` runs).

Each block has one batch norm, after its first convolution:
``relu(x + conv2(relu(bn1(conv1(x)))))``. The reason is the group penalty: a batch norm whose
output reaches another batch norm through a convolution (the second batch norm of a standard
basic block) has no scale of its own, the loss is invariant to multiplying all its
:math:`(\gamma, \beta)` by :math:`s > 0`, so :math:`\lambda\sum_c\|(\gamma_c, \beta_c)\|^{2/D}`
drives the whole layer towards zero together, and no threshold separates dead channels from
living ones. Here every gated batch norm feeds a convolution without a following normalisation
(or the residual trunk), so its scale is seen by the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "DigitsResNet"]


class BasicBlock(nn.Module):
    """``relu(x + conv2(relu(bn1(conv1(x)))))``, 3x3 convolutions (``conv1`` without bias)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.bn1(self.conv1(x)))))


class DigitsResNet(nn.Module):
    """Stem ``conv 3x3 (1 -> width) + batch norm + relu``, ``n_blocks`` basic blocks, average
    pooling to 2x2, flatten, ``nn.Linear(4 * width, n_classes)``; input ``(N, 1, 8, 8)``."""

    def __init__(self, width: int = 12, n_classes: int = 10, n_blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(*[BasicBlock(width) for _ in range(n_blocks)])
        self.fc = nn.Linear(4 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 2).flatten(1))
