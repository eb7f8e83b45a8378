"""The progress line of a download (:mod:`minvert.weights.http`): percent, MB, MB/s, ETA."""
import time


def _mb(n):
    return f"{n / 1e6:.1f}"


class Progress:
    """One status line rewritten in place with \\r, at most ~10 times a second."""

    def __init__(self, out, total, start, enabled):
        self.out, self.total, self.start = out, total, start
        self.enabled = enabled and out is not None
        self.t0 = self.last = time.monotonic()
        self.width = 0

    def update(self, done, final=False):
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.1):
            return
        self.last = now
        rate = (done - self.start) / max(now - self.t0, 1e-6)
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else 0.0
            m, s = divmod(int(eta + 0.5), 60)
            line = (f"{100.0 * done / self.total:5.1f}% {_mb(done)}/{_mb(self.total)} MB "
                    f"{rate / 1e6:.2f} MB/s ETA {m}:{s:02d}")
        else:
            line = f"{_mb(done)} MB {rate / 1e6:.2f} MB/s"
        self.out.write("\r" + line.ljust(self.width))
        self.width = len(line)
        self.out.flush()

    def finish(self, done):
        if self.enabled:
            self.update(done, final=True)
            self.out.write("\n")
            self.out.flush()
