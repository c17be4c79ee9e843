"""Per-pixel mean and standard deviation over samples, two buffers whatever the count.

Welford's update adds one sample; Chan et al.'s pairwise formula merges a batch
summarised by its own count, mean and sum of squared deviations. Both keep the
sum of squared deviations ``m2`` directly, so it never goes negative the way
``sum(x^2) - n * mean^2`` does when the spread is small next to the mean.
"""

import torch


class RunningStats:
    """Running mean and ``m2`` of tensors of one ``shape``, in ``dtype`` on ``device``."""

    def __init__(self, shape, dtype=torch.float32, device="cpu"):
        self.count = 0
        self.mean = torch.zeros(shape, dtype=dtype, device=device)
        self.m2 = torch.zeros(shape, dtype=dtype, device=device)

    def update(self, x: torch.Tensor) -> None:
        """Add one sample (Welford)."""
        x = x.to(self.mean.dtype)
        self.count += 1
        delta = x - self.mean
        self.mean.add_(delta / self.count)
        self.m2.add_(delta * (x - self.mean))

    def update_batch(self, xs: torch.Tensor) -> None:
        """Add ``len(xs)`` samples stacked on the first axis (Chan's merge)."""
        xs = xs.to(self.mean.dtype)
        n_b = xs.shape[0]
        if n_b == 0:
            return
        mean_b = xs.mean(0)
        m2_b = ((xs - mean_b) ** 2).sum(0)
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self.mean
        self.mean.add_(delta * (n_b / n))
        self.m2.add_(m2_b + delta * delta * (n_a * n_b / n))
        self.count = n

    def variance(self, ddof: int = 0) -> torch.Tensor:
        """Per-pixel variance (``ddof=0``: over the samples, as numpy's default)."""
        if self.count - ddof <= 0:
            return torch.zeros_like(self.m2)
        return (self.m2 / (self.count - ddof)).clamp_(min=0)

    def std(self, ddof: int = 0) -> torch.Tensor:
        return self.variance(ddof).sqrt_()
