"""SE variants that cannot take a map of local means (flatten / view after the pool)."""

import torch
from torch import nn


class LinearSE(nn.Module):
    """SE with flatten + nn.Linear after the pool: cannot take a map of local means."""

    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // r), nn.ReLU(), nn.Linear(c // r, c), nn.Sigmoid())

    def forward(self, x):
        b, c = x.shape[:2]
        return x * self.fc(self.pool(x).flatten(1)).view(b, c, 1, 1)


class ViewSE(nn.Module):
    """SE that views the pooled output to (N, C): fails on a map."""

    def __init__(self, c):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv = nn.Conv1d(1, 1, 3, padding=1)

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.pool(x).view(b, 1, c)
        return x * torch.sigmoid(self.conv(y)).view(b, c, 1, 1)
